//! The Zipf URL catalogue: sampled frequencies against the exact probabilities, and a
//! constant-size footprint for ten million URLs.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use w3sim_models::urls::{UrlCatalogue, generalized_harmonic};

/// Pearson chi-square of the top `bins` ranks plus one "everything else" bin.
fn chi_square(cat: &UrlCatalogue, draws: u64, bins: usize, seed: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut counts = vec![0u64; bins + 1];
    for _ in 0..draws {
        let k = cat.sample(&mut rng);
        assert!(k < cat.urls());
        counts[(k as usize).min(bins)] += 1;
    }
    let mut p_rest = 1.0;
    let mut chi = 0.0;
    for (k, &c) in counts.iter().enumerate().take(bins) {
        let p = cat.probability(k as u64);
        p_rest -= p;
        let e = p * draws as f64;
        chi += (c as f64 - e).powi(2) / e;
    }
    let e = p_rest * draws as f64;
    chi + (counts[bins] as f64 - e).powi(2) / e
}

#[test]
fn top_ranks_follow_the_exact_probabilities() {
    // 20 bins + rest = 20 degrees of freedom: P(chi² > 52.4) = 1e-4.
    for (i, &s) in [0.6, 0.8, 1.0, 1.3].iter().enumerate() {
        let cat = UrlCatalogue::new(10_000_000, s);
        let chi = chi_square(&cat, 2_000_000, 20, 11 + i as u64);
        assert!(chi < 52.4, "s = {s}: chi² = {chi}");
    }
    // A small catalogue, every rank a bin.
    let cat = UrlCatalogue::new(8, 0.9);
    let chi = chi_square(&cat, 1_000_000, 7, 5);
    assert!(chi < 30.0, "chi² = {chi}");
}

#[test]
fn probabilities_sum_to_one() {
    for &s in &[0.0, 0.7, 1.0, 1.5] {
        let cat = UrlCatalogue::new(1_000_000, s);
        let total: f64 = (0..cat.urls()).rev().map(|k| cat.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-9, "s = {s}: {total}");
        assert_eq!(cat.probability(cat.urls()), 0.0);
    }
}

#[test]
fn ten_million_urls_cost_a_few_bytes() {
    let cat = UrlCatalogue::new(10_000_000, 0.9);
    assert!(std::mem::size_of::<UrlCatalogue>() <= 64);
    assert!((cat.harmonic() - generalized_harmonic(10_000_000, 0.9)).abs() < 1e-12);
    // Sampling does not allocate either: a million draws take well under a second even in
    // debug builds, and the tail is reached.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let max = (0..1_000_000).map(|_| cat.sample(&mut rng)).max().unwrap();
    assert!(max > 1_000_000, "max rank drawn {max}");
}

#[test]
fn one_url_catalogue() {
    let cat = UrlCatalogue::new(1, 1.0);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    assert!((0..1000).all(|_| cat.sample(&mut rng) == 0));
    assert_eq!(cat.probability(0), 1.0);
}

#[test]
fn sizes_are_deterministic_per_url_and_scale_with_the_mean() {
    let a = UrlCatalogue::new(1000, 1.0);
    let b = UrlCatalogue::new(5, 0.3);
    for k in 0..100 {
        assert_eq!(a.size_of(k, 30_000.0), b.size_of(k, 30_000.0));
        assert!(a.size_of(k, 30_000.0) >= 1);
    }
    // About 1 % of 30 KB-mean images exceed UriMaxUriBytes (256 KB).
    let big = (0..200_000u64)
        .filter(|&k| a.size_of(k, 30_000.0) > 262_144)
        .count() as f64
        / 200_000.0;
    assert!(big > 0.005 && big < 0.02, "{big}");
}
