//! `weir run FILE|DIR...`: run pipelines as a service, until their sources end or a signal stops
//! them, with the admin server (`crate::admin`) and live reload of the pipeline files
//! (`crate::service`).

use crate::config::HostSettings;
use crate::exit;
use crate::service::{self, Service};
use std::path::PathBuf;
use std::time::Duration;

/// Said when the admin server cannot listen: most often another `weir run` on this machine
/// holds the port.
const ADMIN_HELP: &str = "another process (a second `weir run`?) may be listening there: pick \
another address with `WEIR_ADMIN__ADDRESS=127.0.0.1:9465` (or `address` in the `[admin]` table \
of weir.toml), or run without the admin server: `WEIR_ADMIN__ADDRESS=off`";

pub fn run(paths: &[PathBuf], settings: &HostSettings) -> i32 {
    let configs = match service::load_initial(paths) {
        Ok(p) => p,
        Err(errors) => {
            crate::logging::error(&errors.to_string(), None);
            return exit::FAILED;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::logging::error(&format!("cannot start the async runtime: {e}"), None);
            return exit::FAILED;
        }
    };
    let code = runtime.block_on(async {
        let stop = match crate::shutdown::on_signals() {
            Ok(t) => t,
            Err(e) => {
                crate::logging::error(&format!("cannot install signal handlers: {e}"), None);
                return exit::FAILED;
            }
        };
        let service = Service::new(
            paths.to_vec(),
            settings.state_dir.clone(),
            stop.clone(),
            Duration::from_secs(settings.shutdown_timeout_s),
        );
        if settings.admin.address != "off" {
            let prometheus = match crate::admin::metrics::install() {
                Ok(h) => h,
                Err(e) => {
                    crate::logging::error(&e.to_string(), None);
                    return exit::FAILED;
                }
            };
            // The exporter drains histogram samples when rendering; between scrapes, upkeep
            // keeps that buffer small.
            let upkeep = prometheus.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            let admin = crate::admin::start(&settings.admin, service.clone(), prometheus);
            if let Err(e) = admin.await {
                crate::logging::error(&format!("{e}\n  help: {ADMIN_HELP}"), None);
                return exit::USAGE;
            }
        }
        if let Err(e) = service::watch_sighup(&service) {
            crate::logging::error(&format!("cannot install the SIGHUP handler: {e}"), None);
            return exit::FAILED;
        }
        if settings.watch_interval_ms > 0 {
            service::watch_files(&service, Duration::from_millis(settings.watch_interval_ms));
        }
        service.start_all(configs);
        service.run().await
    });
    // Pipelines that did not drain in time may leave tasks behind: do not wait for them.
    runtime.shutdown_background();
    code
}
