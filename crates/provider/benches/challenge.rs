//! The matrix challenge bench: `cargo bench -p aicpw-provider --bench challenge`.
//!
//! Environment: `AICPW_BENCH_N` (default 4096), `AICPW_BENCH_THREADS` (default: all cores),
//! `AICPW_BENCH_K` (default 256), `AICPW_BENCH_ISAS=1` to also compare every instruction set.

use aicpw_provider::challenge::{
    bench_challenge, measure_int_gemm_peak_with, solve_matrix_with, Isa,
};
use aicpw_verify::MatrixChallenge;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let n = setting("AICPW_BENCH_N", 4096) as u32;
    let threads = setting("AICPW_BENCH_THREADS", cores as u64) as usize;
    let k = setting("AICPW_BENCH_K", 256) as u32;
    let bench = bench_challenge(n, threads, k)?;
    println!("{bench:#?}");
    println!(
        "n {n}, {threads} threads, {:?}: solve {:.1} ms = {:.1} GOPS ({:.1}% of peak {:.1} GOPS); \
         multiply alone {:.1} GOPS ({:.1}%); overhead {:.5}; detection {:.4}; verify {:.1} ms",
        bench.engine,
        bench.solve_ms,
        bench.ops_per_sec / 1e9,
        bench.efficiency * 100.0,
        bench.peak_ops_per_sec / 1e9,
        bench.multiply_ops_per_sec / 1e9,
        bench.multiply_efficiency * 100.0,
        bench.capacity_overhead,
        bench.sampled_detection_rate,
        bench.verify_ms,
    );
    if setting("AICPW_BENCH_ISAS", 0) == 1 {
        let challenge = MatrixChallenge::new([1; 32], n, 16)?;
        for isa in Isa::available() {
            let peak = measure_int_gemm_peak_with(isa, threads)?;
            let timings = solve_matrix_with(&challenge, threads, isa)?.timings();
            let rate = challenge.work() as f64 / timings.multiply.as_secs_f64();
            println!(
                "{isa:?}: multiply {:.1} GOPS, peak {:.1} GOPS (register {:?}, L1 kernel {:.1}), {:.1}%",
                rate / 1e9,
                peak.ops_per_sec / 1e9,
                peak.register_ops_per_sec.map(|ops| (ops / 1e9).round()),
                peak.kernel_l1_ops_per_sec / 1e9,
                100.0 * rate / peak.ops_per_sec
            );
        }
    }
    Ok(())
}
