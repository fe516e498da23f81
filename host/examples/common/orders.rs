//! The benchmarks' test data: ~400-byte EventBridge-shaped order events from 5,000 customers,
//! with fields the redact plugin hides (`email`, `card`).

/// Order `n`: its customer (the key) and its JSON text.
pub(crate) fn order(n: u64) -> (String, String) {
    let customer = format!("C{:04}", n % 5000);
    let value = format!(
        "{{\"version\":\"0\",\"id\":\"{n}\",\"detail-type\":\"OrderCreated\",\"source\":\"shop.orders\",\"time\":\"2026-11-22T10:00:00Z\",\"detail\":{{\"orderId\":\"O{n}\",\"customerId\":\"{customer}\",\"email\":\"c{n}@example.com\",\"card\":\"4111-1111-1111-{:04}\",\"amount\":{}.5,\"items\":[{{\"sku\":\"S{}\",\"qty\":{}}},{{\"sku\":\"S{}\",\"qty\":1}}],\"note\":\"{}\"}}}}",
        n % 10000,
        n % 500,
        n % 97,
        n % 5 + 1,
        n % 89,
        "x".repeat(40)
    );
    (customer, value)
}
