//! The ledger's integration tests: the sequencer's promises on the real embedded store.

mod sequencer;
