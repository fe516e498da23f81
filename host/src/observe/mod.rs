//! Watching pipelines run: what each counted (`counters`), the state and last error the admin
//! API and `weir top` show (`status`), and the live copies of events that `weir tap` asks for
//! (`tap`), and why events were dead-lettered (`reasons`). The runtime and the sources write here; the service, the admin API and the commands
//! read. Nothing here runs a pipeline.

pub(crate) mod counters;
pub(crate) mod reasons;
pub(crate) mod status;
pub(crate) mod tap;
