//! Choosing loopback ports for local nodes (`trellis testnet`, and the integration tests,
//! which include this file).

use std::net::TcpListener;

/// `n` distinct free loopback ports below the kernel's ephemeral range: a port from that range
/// (what binding port 0 hands out) may be taken by an outgoing connection — the nodes' own
/// dials — between choosing it and the node listening on it. Every listener is held until
/// all are chosen (the kernel may hand a port just released out again).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Below the ephemeral range when it leaves room there (a range starting low leaves
    // none: then anywhere above 10000).
    let low = 10_000u32;
    let high = match u32::from(ephemeral_from) {
        from if from >= low + 1_000 => from,
        _ => 65_536,
    };
    let span = high - low;
    let start = rand::random::<u32>() % span;
    let listeners: Vec<TcpListener> = (0..span)
        .filter_map(|i| u16::try_from(low + (start + i) % span).ok())
        .filter_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
        .take(n)
        .collect();
    if listeners.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("fewer than {n} free loopback ports between {low} and {high}"),
        ));
    }
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
