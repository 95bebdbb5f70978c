//! Rewrites an ffmpeg H.264(+AAC) MKV the way a KVS producer (kvssink / PIC) lays it out
//! (kvs-api.md §7.3, kvssink-behaviour.md §5), producing `samples/kvs_style_h264.mkv`:
//!
//! - EBML header DocTypeVersion 2; Segment and every Cluster of unknown size;
//! - Info with the producer's Title/MuxingApp/WritingApp and a (here fixed) SegmentUID;
//! - Tracks: 1 `kinesis_video` V_MPEG4/ISO/AVC, 2 `audio` A_AAC, CodecPrivate copied;
//! - one Cluster per GOP with absolute epoch-ms Timecode, `Position` 0, SimpleBlocks in the
//!   source order, audio never flagged key;
//! - a fragment-metadata Tags element before the third Cluster;
//! - `AWS_KINESISVIDEO_END_OF_FRAGMENT` Tags after the last Cluster;
//! - then a second document, as after a producer restart: new EBML header, Segment, Info,
//!   Tracks, the last GOP re-sent, and the end-of-fragment Tags again.
//!
//! Used by `examples/make_kvs_style.rs` (which wrote the committed sample) and by the golden
//! test, which checks that the committed file is still byte-identical to what the writer makes.

use openkvs_mkv::{
    AWS_KINESISVIDEO_END_OF_FRAGMENT, Audio, Block, EbmlHeader, Event, Info, ParserBuilder,
    SizeMode, Tag, TrackEntry, TrackKind, Video, Writer, ids, parse_all,
};

/// Producer clock at the first frame: 2023-11-14T22:13:20Z in ms (ABSOLUTE timecode mode).
const START_MS: i64 = 1_700_000_000_000;

struct F {
    track: u64,
    ts_ms: i64,
    key: bool,
    payload: Vec<u8>,
}

/// Converts an ffmpeg H.264(+AAC) MKV into the KVS producer layout described above.
pub(crate) fn convert(src: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let events = parse_all(src, ParserBuilder::default())?;
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    let mut cluster_tc = 0i64;
    let mut scale_ns = 1_000_000u64;
    for ev in events {
        match ev {
            Event::Info { info, .. } => scale_ns = info.timecode_scale_ns,
            Event::Tracks { tracks: t, .. } => tracks = t,
            Event::ClusterStart { timecode, .. } => cluster_tc = timecode as i64,
            Event::Frame(f) => frames.push(F {
                track: f.track,
                ts_ms: (cluster_tc + i64::from(f.timecode_rel)) * scale_ns as i64 / 1_000_000,
                key: f.keyframe,
                payload: f.payload,
            }),
            _ => {}
        }
    }
    let src_track = |kind| tracks.iter().find(|t: &&TrackEntry| t.kind == kind);
    let v = src_track(TrackKind::Video).ok_or("no video track")?;
    let mut out_tracks = vec![TrackEntry {
        number: 1,
        uid: 1,
        kind: TrackKind::Video,
        codec_id: "V_MPEG4/ISO/AVC".to_owned(),
        codec_private: v.codec_private.clone(),
        name: Some("kinesis_video".to_owned()),
        video: Some(v.video.unwrap_or(Video {
            pixel_width: 320,
            pixel_height: 240,
        })),
        ..Default::default()
    }];
    let audio_src = src_track(TrackKind::Audio).map(|a| a.number);
    if let Some(a) = src_track(TrackKind::Audio) {
        out_tracks.push(TrackEntry {
            number: 2,
            uid: 2,
            kind: TrackKind::Audio,
            codec_id: "A_AAC".to_owned(),
            codec_private: a.codec_private.clone(),
            name: Some("audio".to_owned()),
            audio: Some(a.audio.unwrap_or(Audio::default())),
            ..Default::default()
        });
    }
    let video_src = v.number;
    // Map source tracks to producer tracks; split into GOPs at video keyframes.
    let mut gops: Vec<Vec<F>> = Vec::new();
    let t0 = frames.iter().map(|f| f.ts_ms).min().unwrap_or(0);
    for f in frames {
        let track = if f.track == video_src {
            1
        } else if Some(f.track) == audio_src {
            2
        } else {
            continue;
        };
        if track == 1 && f.key || gops.is_empty() {
            gops.push(Vec::new());
        }
        gops.last_mut().expect("pushed above").push(F {
            track,
            ts_ms: START_MS + f.ts_ms - t0,
            key: track == 1 && f.key,
            payload: f.payload,
        });
    }

    let mut w = Writer::new();
    let header = |w: &mut Writer, uid: u8| {
        w.ebml_header(&EbmlHeader::matroska(2));
        w.begin_segment(SizeMode::Unknown);
        w.info(&Info {
            timecode_scale_ns: 1_000_000,
            title: Some("Kinesis Video SDK".to_owned()),
            muxing_app: Some("Kinesis Video SDK 1.1.0".to_owned()),
            writing_app: Some("Kinesis Video SDK 1.1.0".to_owned()),
            segment_uid: Some((uid..uid + 16).collect()),
            ..Default::default()
        });
        w.tracks(&out_tracks);
    };
    let cluster = |w: &mut Writer, gop: &[F]| -> Result<(), openkvs_mkv::Error> {
        let tc = gop[0].ts_ms;
        w.begin_cluster(tc as u64, SizeMode::Unknown);
        w.uint_element(ids::POSITION, 0);
        for f in gop {
            let rel = i16::try_from(f.ts_ms - tc).expect("GOPs are 1 s long");
            w.block(&Block::simple(f.track, rel, f.key, &f.payload))?;
        }
        Ok(())
    };
    let eofr = [Tag::strings([(AWS_KINESISVIDEO_END_OF_FRAGMENT, "")])];

    header(&mut w, 0x10);
    for (i, gop) in gops.iter().enumerate() {
        if i == 2 {
            // Fragment metadata, placed before the Cluster it applies to (PIC Stream.c).
            w.tags(&[Tag::strings([("CAMERA_EVENT", "motion"), ("ZONE", "door")])]);
        }
        cluster(&mut w, gop)?;
    }
    w.tags(&eofr);
    // Restart: a new document re-sends the last, not yet persisted, fragment.
    header(&mut w, 0x20);
    cluster(&mut w, gops.last().ok_or("no frames")?)?;
    w.tags(&eofr);
    Ok(w.into_bytes())
}
