//! `openkvs`: a self-hosted server that speaks the Amazon Kinesis Video Streams protocol, and the
//! client tools that go with it.

mod cli;
mod client;
mod config;
mod credentials;
mod demo;
mod fsck;
mod selfsigned;
mod serve;
mod turn;

use clap::Parser as _;

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = cli::Cli::parse();
    if let cli::Command::Fsck(args) = &cli.command {
        return fsck::command(args);
    }
    match cli.command {
        cli::Command::Serve(args) => {
            let cfg = config::ServeConfig::resolve(*args)?;
            serve::init_logging(cfg.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve::run(cfg))
        }
        cli::Command::Credentials(cli::CredentialsCommand::Mint(args)) => {
            credentials::mint_command(&args)
        }
        cli::Command::PutMedia(args) => client::put_media::command(&args),
        cli::Command::GetClip(args) => client::get_clip::command(&args),
        cli::Command::Presign(cli::PresignCommand::PutMedia(args)) => {
            client::presign::command(&args)
        }
        cli::Command::Presign(cli::PresignCommand::GetClip(args)) => {
            client::get_clip::presign_command(&args)
        }
        #[cfg(feature = "webrtc")]
        cli::Command::Camera(args) => client::camera::command(&args),
        #[cfg(feature = "webrtc")]
        cli::Command::Viewer(args) => client::camera::viewer_command(&args),
        cli::Command::Fsck(_) => unreachable!("handled above"),
    }
    .map(|()| std::process::ExitCode::SUCCESS)
}
