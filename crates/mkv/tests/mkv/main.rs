//! Integration tests of `openkvs-mkv`: round trips with the writer, stream structure and error
//! tables, property tests, golden dumps of real producer files and cross-checks against
//! ffprobe and matroska-demuxer. One test binary, to link once.

mod crosscheck;
mod golden;
mod kvs_style;
mod props;
mod roundtrip;
mod structure;

use openkvs_mkv::{Error, Event, ParserBuilder};

/// Events and the terminal error of parsing `data` pushed in the pieces that `splits` (sorted
/// cut points) make, checking invariants after every call.
pub(crate) fn parse_split(
    data: &[u8],
    splits: &[usize],
    builder: ParserBuilder,
) -> (Vec<Event>, Option<Error>) {
    let mut p = builder.build();
    let mut events = Vec::new();
    let mut start = 0;
    let ends = splits.iter().copied().chain(std::iter::once(data.len()));
    for end in ends {
        let end = end.clamp(start, data.len());
        p.push(&data[start..end]);
        p.check_invariants();
        start = end;
        loop {
            match p.poll() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
            p.check_invariants();
        }
        p.check_invariants();
    }
    if let Err(e) = p.finish() {
        // Events queued before the error are still delivered first.
        while let Ok(Some(ev)) = p.poll() {
            events.push(ev);
        }
        return (events, Some(e));
    }
    p.check_invariants();
    loop {
        match p.poll() {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => break,
            Err(e) => return (events, Some(e)),
        }
    }
    p.check_invariants();
    (events, None)
}

/// Parses in one piece; panics on error.
pub(crate) fn parse_ok(data: &[u8]) -> Vec<Event> {
    let (events, err) = parse_split(data, &[], ParserBuilder::default());
    if let Some(e) = err {
        panic!("parse failed: {e} (after {} events)", events.len());
    }
    events
}

/// Parses in chunks of `n` bytes.
pub(crate) fn parse_chunks(
    data: &[u8],
    n: usize,
    builder: ParserBuilder,
) -> (Vec<Event>, Option<Error>) {
    let splits: Vec<usize> = (1..)
        .map(|i| i * n)
        .take_while(|&s| s < data.len())
        .collect();
    parse_split(data, &splits, builder)
}

/// A compact summary of an event sequence for structure assertions.
pub(crate) fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|ev| match ev {
            Event::EbmlHeader { .. } => "Ebml".to_owned(),
            Event::SegmentStart { size, .. } => match size {
                Some(_) => "Segment".to_owned(),
                None => "Segment?".to_owned(),
            },
            Event::Info { .. } => "Info".to_owned(),
            Event::Tracks { tracks, .. } => format!("Tracks{}", tracks.len()),
            Event::Tags {
                in_cluster, tags, ..
            } => {
                let name = tags
                    .first()
                    .and_then(|t| t.simple_tags.first())
                    .map_or("", |s| s.name.as_str());
                format!("Tags({}{name})", if *in_cluster { "in:" } else { "" })
            }
            Event::ClusterStart { size, timecode, .. } => match size {
                Some(_) => format!("Cluster@{timecode}"),
                None => format!("Cluster?@{timecode}"),
            },
            Event::Frame(f) => format!("F{}:{}", f.track, f.timecode_rel),
            Event::ClusterEnd { .. } => "/Cluster".to_owned(),
            Event::SegmentEnd { .. } => "/Segment".to_owned(),
            _ => "?".to_owned(),
        })
        .collect()
}
