//! Comparing embeddings.

/// Cosine similarity of two vectors (0 where either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    }
}

/// How far apart two row-major [n, dim] matrices are: (max absolute difference, minimum
/// cosine similarity of corresponding rows). Used to check one encoder against another.
pub fn agreement(a: &[f32], b: &[f32], dim: usize) -> (f32, f32) {
    assert_eq!(a.len(), b.len(), "matrices of different sizes");
    let max_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    let min_cos = a.chunks(dim).zip(b.chunks(dim)).map(|(x, y)| cosine(x, y)).fold(1.0, f32::min);
    (max_diff, min_cos)
}
