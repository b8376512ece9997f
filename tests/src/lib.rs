//! Boot-test helpers (skeleton).
