//! `weir run FILE|DIR...`: run pipelines as a service, until their sources end or a signal stops
//! them, with the admin server (`crate::admin`) and live reload of the pipeline files
//! (`crate::service`).

use super::exit;
use crate::config::HostSettings;
use crate::service::{self, Service};
use std::path::PathBuf;
use std::time::Duration;

pub fn run(paths: &[PathBuf], settings: &HostSettings) -> i32 {
    let configs = match service::load_initial(paths) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return exit::FAILED;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    let code = runtime.block_on(async {
        let stop = match crate::shutdown::on_signals() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot install signal handlers: {e}");
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
                    eprintln!("error: {e}");
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
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
        if let Err(e) = service::watch_sighup(&service) {
            eprintln!("error: cannot install the SIGHUP handler: {e}");
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
