//! `weir run FILE|DIR...`: run pipelines until their sources end or a signal stops them.

use super::exit;
use crate::config::{HostSettings, load_pipelines};
use crate::pipeline::Pipeline;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

pub fn run(paths: &[PathBuf], settings: &HostSettings) -> i32 {
    let pipelines = match load_pipelines(paths) {
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
    runtime.block_on(async {
        let stop = match crate::shutdown::on_signals() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot install signal handlers: {e}");
                return exit::FAILED;
            }
        };
        run_all(
            pipelines
                .into_iter()
                .map(|c| Pipeline::new(c, &settings.state_dir))
                .collect(),
            stop,
        )
        .await
    })
}

/// Runs pipelines side by side. One that fails is reported and the others keep running.
pub async fn run_all(pipelines: Vec<Pipeline>, stop: CancellationToken) -> i32 {
    let mut tasks = tokio::task::JoinSet::new();
    for p in pipelines {
        let name = p.name().to_owned();
        let stop = stop.clone();
        tasks.spawn(async move { (name, p.run(stop).await) });
    }
    let mut code = exit::OK;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(_))) => {}
            Ok((name, Err(e))) => {
                tracing::error!(pipeline = %name, error = %e, "pipeline failed");
                eprintln!("error: {e}");
                code = exit::FAILED;
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline task failed");
                code = exit::FAILED;
            }
        }
    }
    code
}
