//! `openkvs camera` and `openkvs viewer`: thin wrappers around `openkvs-camera` that resolve
//! endpoint, credentials and region like the other client subcommands, and (with `--stream`)
//! run the put-media uploader on the camera's live MKV output.

use std::time::Duration;

use anyhow::Context as _;
use camera::{CameraConfig, IcePolicy, MediaSource};

use crate::cli::{
    CameraArgs, IceArgs, IcePolicyArg, LogFormat, OutputFormat, TimecodeTypeArg, ViewerArgs,
};
use crate::client::aws_config::{self, ClientConfig};
use crate::client::http::tls_client_config;
use crate::client::put_media;

/// webrtc-rs logs every ICE/DTLS state change at info and harmless oddities at warn; keep the
/// camera's own lines. RUST_LOG overrides.
const CAMERA_LOG_FILTER: &str =
    "info,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error,rtc_sctp=error,webrtc=error";

/// Bytes of live MKV buffered between the camera and the PutMedia uploader.
const LIVE_PIPE_BYTES: usize = 1 << 20;

fn policy(ice: &IceArgs) -> IcePolicy {
    match ice.ice_transport_policy {
        IcePolicyArg::All => IcePolicy::All,
        IcePolicyArg::Relay => IcePolicy::Relay,
    }
}

/// TLS settings for https/wss endpoints; `None` for a plain-HTTP endpoint whose machine has no
/// CA store (signaling endpoints follow the control endpoint's scheme).
fn tls(cfg: &ClientConfig) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
    match tls_client_config(cfg.ca_bundle.as_deref()) {
        Ok(c) => Ok(Some(c)),
        Err(e) if cfg.endpoint.tls => Err(e),
        Err(_) => Ok(None),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `openkvs camera`.
pub(crate) fn command(args: &CameraArgs) -> anyhow::Result<()> {
    crate::serve::init_logging_with(LogFormat::Human, CAMERA_LOG_FILTER);
    let cfg = aws_config::resolve(&args.client)?;
    kvs_core::ChannelName::parse(&args.channel)
        .with_context(|| format!("--channel `{}`", args.channel))?;
    if let Some(s) = &args.stream {
        kvs_core::StreamName::parse(s).with_context(|| format!("--stream `{s}`"))?;
    }
    let source = match &args.file {
        Some(path) => MediaSource::File(path.clone()),
        None => MediaSource::TestPattern,
    };
    let mut camera_cfg = CameraConfig::new(
        cfg.endpoint.base_url(),
        cfg.credentials.clone(),
        args.channel.clone(),
        source,
    );
    camera_cfg.region = cfg.region.clone();
    camera_cfg.tls = tls(&cfg)?;
    camera_cfg.udp_addrs = args.ice.udp_addrs.clone();
    camera_cfg.ice_policy = policy(&args.ice);

    let rt = runtime()?;
    let result = rt.block_on(async {
        let Some(stream) = &args.stream else {
            return camera::run(camera_cfg, crate::serve::shutdown_signal()).await;
        };
        let (writer, reader) = tokio::io::duplex(LIVE_PIPE_BYTES);
        camera_cfg.live_mkv = Some(writer);
        let settings = put_media::Settings {
            stream: stream.clone(),
            timecode_type: TimecodeTypeArg::Absolute,
            // The camera paces the frames already.
            realtime: false,
            resume: true,
            output: OutputFormat::Text,
            max_buffer: 128 << 20,
            ack_timeout: Duration::from_secs(30),
            retries: 10,
            quiet: true,
        };
        let upload = put_media::run(&cfg, &settings, reader, None);
        tokio::select! {
            r = camera::run(camera_cfg, crate::serve::shutdown_signal()) => r,
            r = upload => match r {
                Ok(summary) => anyhow::bail!("the PutMedia upload ended: {summary}"),
                Err(e) => Err(e.context(format!("PutMedia to stream `{stream}`"))),
            },
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// `openkvs viewer`: prints the report as JSON.
pub(crate) fn viewer_command(args: &ViewerArgs) -> anyhow::Result<()> {
    let cfg = aws_config::resolve(&args.client)?;
    kvs_core::ChannelName::parse(&args.channel)
        .with_context(|| format!("--channel `{}`", args.channel))?;
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("viewer-{:08x}", rand::random::<u32>()));
    let viewer_cfg = camera::viewer::ViewerConfig {
        endpoint: cfg.endpoint.base_url(),
        credentials: cfg.credentials.clone(),
        region: cfg.region.clone(),
        channel: args.channel.clone(),
        client_id,
        tls: tls(&cfg)?,
        udp_addrs: args.ice.udp_addrs.clone(),
        ice_policy: policy(&args.ice),
        receive_for: args.duration,
        connect_timeout: args.connect_timeout,
    };
    let rt = runtime()?;
    let report = rt.block_on(camera::viewer::watch(viewer_cfg));
    rt.shutdown_timeout(Duration::from_secs(1));
    let report = report?;
    #[allow(clippy::print_stdout)] // the command's output
    {
        println!("{}", serde_json::to_string(&report)?);
    }
    if report.video_packets == 0 {
        anyhow::bail!("connected, but no video arrived");
    }
    Ok(())
}
