# Build, boot, test and benchmark the kernel. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

target := "x86_64-unknown-none"
out := "target/" + target + "/release"
limine_dir := env("LIMINE_DIR", "build/limine")
# Crates built for the bare-metal target, and crates that build and test on the host.
metal := "-p kernel -p arch -p smp -p loader"
host := "-p mm -p tests"

# List the recipes.
default:
    @just --list

# The pinned toolchain (rust-toolchain.toml) with its target and components, then QEMU >= 9,
# xorriso, mtools and OVMF (installed on Debian/Ubuntu as root).
setup: toolchain
    #!/usr/bin/env bash
    set -euo pipefail
    qemu_ok() {
        command -v qemu-system-x86_64 >/dev/null || return 1
        local v; v=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)
        [ "${v:-0}" -ge 9 ]
    }
    tools_ok() { command -v xorriso >/dev/null && command -v mformat >/dev/null && [ -d /usr/share/OVMF ]; }
    if qemu_ok && tools_ok; then echo "setup: QEMU $(qemu-system-x86_64 --version | head -n1 | awk '{print $4}'), xorriso, mtools, OVMF present"; exit 0; fi
    . /etc/os-release 2>/dev/null || true
    suite=""
    if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then suite=bookworm-backports; fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "setup: missing tools. On Debian 12 run as root:"
        echo "  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list"
        echo "  apt-get update && apt-get install -y -t bookworm-backports qemu-system-x86 xorriso mtools ovmf"
        echo "Elsewhere install QEMU 9 or newer (qemu-system-x86_64), xorriso, mtools and OVMF."
        exit 1
    fi
    if [ -n "$suite" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq ${suite:+-t $suite} qemu-system-x86 xorriso mtools ovmf >/dev/null
    qemu_ok || { echo "setup: QEMU is older than 9 (no TCG x2APIC): $(qemu-system-x86_64 --version | head -n1)"; exit 1; }
    echo "setup: installed $(qemu-system-x86_64 --version | head -n1)"

# Make sure the pinned toolchain has the bare-metal target and the lint components: rustup
# installs neither into a toolchain that is already present, and a machine may have 1.95.0
# without them. Both commands are quick no-ops once everything is there.
toolchain:
    rustup toolchain install
    rustup target add {{target}}
    rustup component add rustfmt clippy

# Build the loader and the kernel (release) for the bare-metal target.
build: toolchain
    cargo build --release -p loader -p kernel --target {{target}}

# Boot N CPUs under QEMU (q35, -cpu max), serial on the terminal; exits with the kernel's verdict.
run-smp N="8" MEM="1G" CPU="max": build
    cargo run -q --release -p tests --bin qemu-run -- --smp {{N}} --mem {{MEM}} --cpu {{CPU}}

# Boot N CPUs over NODES NUMA memory nodes (CPUs and memory spread evenly, a SLIT); as run-smp.
run-numa N="8" NODES="2" MEM="1G" CPU="max": build
    cargo run -q --release -p tests --bin qemu-run -- --smp {{N}} --mem {{MEM}} --cpu {{CPU}} --numa {{NODES}}

# Every check: format, clippy (both targets), host unit/property/loom tests, QEMU boot tests.
test: build lint
    cargo test --release -p mm --features checked
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p mm --features checked --test loom
    cargo test -p loader --lib
    cargo test --release -p tests -- --test-threads=2

# Formatting and clippy with warnings denied, for the kernel target and the host crates.
lint: toolchain
    cargo fmt --all -- --check
    cargo clippy --target {{target}} {{metal}} -- -D warnings
    cargo clippy {{host}} --all-targets --all-features -- -D warnings
    cargo clippy -p loader --lib --tests -- -D warnings

# Benchmarks: host magazine-vs-baseline table, fast-path instruction count, in-kernel comparison.
bench: build
    cargo bench -p mm
    cargo run -q --release -p tests --bin kbench

# Fetch a Limine binary release (v10.x) into LIMINE_DIR and build its host tool (needs network).
limine:
    git clone https://github.com/limine-bootloader/limine.git --branch=v10.x-binary --depth=1 {{limine_dir}}
    make -C {{limine_dir}}

# A hybrid BIOS/UEFI ISO booting the kernel with real Limine from LIMINE_DIR.
iso: build
    #!/usr/bin/env bash
    set -euo pipefail
    L={{limine_dir}}
    [ -f "$L/limine-bios-cd.bin" ] || { echo "iso: no Limine binary release in $L (run 'just limine' or set LIMINE_DIR)"; exit 1; }
    [ -x "$L/limine" ] || make -C "$L"
    root=build/iso_root
    rm -rf "$root" && mkdir -p "$root/boot/limine" "$root/EFI/BOOT"
    cp {{out}}/kernel "$root/boot/kernel"
    cp limine.conf "$L/limine-bios.sys" "$L/limine-bios-cd.bin" "$L/limine-uefi-cd.bin" "$root/boot/limine/"
    cp "$L/BOOTX64.EFI" "$L/BOOTIA32.EFI" "$root/EFI/BOOT/"
    xorriso -as mkisofs -R -r -J -b boot/limine/limine-bios-cd.bin \
        -no-emul-boot -boot-load-size 4 -boot-info-table -hfsplus \
        -apm-block-size 2048 --efi-boot boot/limine/limine-uefi-cd.bin \
        -efi-boot-part --efi-boot-image --protective-msdos-label \
        "$root" -o build/kernel.iso
    "$L/limine" bios-install build/kernel.iso
    echo "iso: build/kernel.iso"

# Boot the ISO with real Limine: FIRMWARE is bios or uefi.
run-limine N="8" FIRMWARE="bios" MEM="1G": iso
    #!/usr/bin/env bash
    set -uo pipefail
    fw=()
    if [ "{{FIRMWARE}}" = uefi ]; then fw=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd); fi
    qemu-system-x86_64 -machine q35 -cpu max -smp {{N}} -m {{MEM}} "${fw[@]}" \
        -cdrom build/kernel.iso -display none -serial stdio -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
    status=$?
    [ $status = 33 ] && exit 0
    echo "run-limine: QEMU exit status $status (33 is RESULT PASS)"; exit 1
