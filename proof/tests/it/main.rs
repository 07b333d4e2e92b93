//! Integration tests of gpulut-proof against the real server (in-process, fresh database).
