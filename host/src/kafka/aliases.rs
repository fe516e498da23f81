//! Which librdkafka property a name sets. librdkafka takes several names for some properties
//! (`metadata.broker.list` and `bootstrap.servers`, `acks` and `request.required.acks`), and a
//! topic property with or without a `topic.` prefix. weir needs to know that two names are one
//! property: to refuse every name of a property it owns, and to refuse a table that sets one
//! property twice (rdkafka keeps properties in a hash map, so which of the two values librdkafka
//! would get could change from one start to the next).
//!
//! The tables are librdkafka's own (`rd_kafka_properties` in `rdkafka_conf.c`, the entries of
//! type `_RK_C_ALIAS`); a test checks them against the librdkafka weir is linked with.

/// One librdkafka property, whatever name set it: its scope and its own (not alias) name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Canonical {
    /// A topic property (librdkafka's default topic configuration) rather than a global one.
    pub topic: bool,
    pub name: String,
}

/// Global aliases: name, the property it sets.
const GLOBAL_ALIASES: &[(&str, &str)] = &[
    ("bootstrap.servers", "metadata.broker.list"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("sasl.mechanism", "sasl.mechanisms"),
    (
        "sasl.oauthbearer.client.credentials.client.id",
        "sasl.oauthbearer.client.id",
    ),
    (
        "sasl.oauthbearer.client.credentials.client.secret",
        "sasl.oauthbearer.client.secret",
    ),
    ("max.partition.fetch.bytes", "fetch.message.max.bytes"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("retries", "message.send.max.retries"),
    ("compression.type", "compression.codec"),
];

/// Topic aliases: name, the property it sets.
const TOPIC_ALIASES: &[(&str, &str)] = &[
    ("acks", "request.required.acks"),
    ("delivery.timeout.ms", "message.timeout.ms"),
    ("compression.type", "compression.codec"),
    ("enable.auto.commit", "auto.commit.enable"),
];

/// Every name of the topic scope (properties and aliases).
const TOPIC_NAMES: &[&str] = &[
    "acks",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "compression.codec",
    "compression.level",
    "compression.type",
    "consume.callback.max.messages",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "message.timeout.ms",
    "msg_order_cmp",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "opaque",
    "partitioner",
    "partitioner_cb",
    "produce.offset.report",
    "queuing.strategy",
    "request.required.acks",
    "request.timeout.ms",
];

/// Topic-scope names that are global names too: librdkafka looks a name up in the global scope
/// first, so without a `topic.` prefix these set the global property.
const ALSO_GLOBAL: &[&str] = &[
    "auto.commit.interval.ms",
    "compression.codec",
    "compression.type",
    "enable.auto.commit",
    "offset.store.method",
    "opaque",
];

/// Global properties whose own name starts with `topic.` (the prefix is not stripped).
const GLOBAL_TOPIC_PREFIXED: &[&str] = &[
    "topic.blacklist",
    "topic.metadata.propagation.max.ms",
    "topic.metadata.refresh.fast.cnt",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.sparse",
];

fn resolve(table: &[(&str, &str)], name: &str) -> String {
    table
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| real)
        .to_owned()
}

/// The property `name` sets, as librdkafka's `rd_kafka_conf_set` finds it: the global scope
/// first, then the topic scope (where a `topic.` prefix is dropped); an alias stands for the
/// property it names. A name librdkafka does not know is returned as it is (it is refused
/// elsewhere with librdkafka's own message).
pub(super) fn canonical(name: &str) -> Canonical {
    let topic_name = match name.strip_prefix("topic.") {
        Some(rest) if !GLOBAL_TOPIC_PREFIXED.contains(&name) => Some(rest),
        Some(_) => None,
        None if TOPIC_NAMES.contains(&name) && !ALSO_GLOBAL.contains(&name) => Some(name),
        None => None,
    };
    match topic_name {
        Some(n) => Canonical {
            topic: true,
            name: resolve(TOPIC_ALIASES, n),
        },
        None => Canonical {
            topic: false,
            name: resolve(GLOBAL_ALIASES, name),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_name_of_a_property_is_that_property() {
        let same = |a: &str, b: &str| assert_eq!(canonical(a), canonical(b), "{a} = {b}");
        same("bootstrap.servers", "metadata.broker.list");
        same("acks", "request.required.acks");
        same("acks", "topic.acks");
        same("topic.request.required.acks", "request.required.acks");
        same("auto.offset.reset", "topic.auto.offset.reset");
        same("linger.ms", "queue.buffering.max.ms");
        same("delivery.timeout.ms", "topic.message.timeout.ms");
        let differ = |a: &str, b: &str| assert_ne!(canonical(a), canonical(b), "{a} != {b}");
        // The global property and the legacy topic one of the same name.
        differ("enable.auto.commit", "topic.enable.auto.commit");
        differ("compression.codec", "topic.compression.codec");
        differ(
            "topic.metadata.refresh.interval.ms",
            "metadata.refresh.interval.ms",
        );
        assert_eq!(
            canonical("topic.metadata.refresh.sparse").name,
            "topic.metadata.refresh.sparse"
        );
    }

    /// librdkafka's own description of its properties (CONFIGURATION.md, as the library linked
    /// in prints it): `(topic scope, name, alias target)` for each visible property.
    fn librdkafka_properties() -> Vec<(bool, String, Option<String>)> {
        let text = unsafe {
            let file = libc::tmpfile();
            assert!(!file.is_null());
            rdkafka::bindings::rd_kafka_conf_properties_show(file as *mut _);
            libc::fflush(file);
            let mut text = String::new();
            use std::io::Read;
            let fd = libc::dup(libc::fileno(file));
            let mut f = <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd);
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_string(&mut text).unwrap();
            libc::fclose(file);
            text
        };
        let mut topic = false;
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with("## Topic configuration") {
                topic = true;
            }
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            if cells.len() < 6 || cells[0] == "Property" || cells[0].starts_with('-') {
                continue;
            }
            let description = cells[5];
            let alias = description
                .split_once("Alias for `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(target, _)| target.to_owned());
            out.push((topic, cells[0].to_owned(), alias));
        }
        out
    }

    /// The tables above are those of the librdkafka weir is built with: a librdkafka upgrade
    /// that adds an alias fails here until the tables follow.
    #[test]
    fn the_tables_are_librdkafkas() {
        let props = librdkafka_properties();
        assert!(props.len() > 100, "parsed {} properties", props.len());
        let aliases = |scope: bool| -> BTreeSet<(String, String)> {
            props
                .iter()
                .filter(|(t, _, a)| *t == scope && a.is_some())
                .map(|(_, n, a)| (n.clone(), a.clone().unwrap()))
                .collect()
        };
        let ours = |table: &[(&str, &str)]| -> BTreeSet<(String, String)> {
            table
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(aliases(false), ours(GLOBAL_ALIASES));
        assert_eq!(aliases(true), ours(TOPIC_ALIASES));
        let names = |scope: bool| -> BTreeSet<&str> {
            props
                .iter()
                .filter(|(t, _, _)| *t == scope)
                .map(|(_, n, _)| n.as_str())
                .collect()
        };
        let (global, topic) = (names(false), names(true));
        let listed: BTreeSet<&str> = TOPIC_NAMES.iter().copied().collect();
        assert!(topic.is_subset(&listed), "{:?}", topic.difference(&listed));
        // Every listed name librdkafka shows is a topic name (the others are hidden ones).
        let both: BTreeSet<&str> = global.intersection(&topic).copied().collect();
        let also: BTreeSet<&str> = ALSO_GLOBAL
            .iter()
            .copied()
            .filter(|n| topic.contains(n))
            .collect();
        assert_eq!(both, also);
        let prefixed: BTreeSet<&str> = global
            .iter()
            .copied()
            .filter(|n| n.starts_with("topic."))
            .collect();
        let ours_prefixed: BTreeSet<&str> = GLOBAL_TOPIC_PREFIXED.iter().copied().collect();
        assert!(prefixed.is_subset(&ours_prefixed), "{prefixed:?}");
    }
}
