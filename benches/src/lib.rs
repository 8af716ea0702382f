//! Netherbrain benches: what the load programs in `src/bin` share.

/// The value at percentile `p` (0–100) of `sorted` (nearest rank; 0 when
/// empty).
///
/// ```
/// assert_eq!(netherbrain_benches::percentile(&[1, 2, 3, 4, 5], 50.0), 3);
/// assert_eq!(netherbrain_benches::percentile(&[], 99.0), 0);
/// ```
#[must_use]
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Microseconds as milliseconds.
///
/// ```
/// assert_eq!(netherbrain_benches::ms(1500), 1.5);
/// ```
#[allow(clippy::cast_precision_loss)]
#[must_use]
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
