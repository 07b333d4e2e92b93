//! Token hygiene: secrets stored only as digests, enrollment limits under concurrency, revocations that take effect at once.
