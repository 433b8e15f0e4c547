//! Console tests: pure update tests (messages in → state and effects out) and rendering
//! snapshots on ratatui's TestBackend, all on fixed data and a fixed clock.

mod fixtures;
mod render;
mod shown_text;
mod update;
