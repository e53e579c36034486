//! A Jira-shaped stand-in target for the local demo: accepts every
//! request with 201 and prints it.

use std::net::SocketAddr;

use clap::Parser;
use intops_tests::MockTarget;

#[derive(Debug, Parser)]
#[command(
    name = "intops-mock-target",
    about = "prints every request it receives and answers 201"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _target = MockTarget::start_on(args.listen, true).await?;
    println!("mock target listening on http://{}", args.listen);
    // Ctrl-C on a terminal, SIGTERM from a container runtime.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
