//! Counts the verdicts a corpus reaches: shows whether a fuzzing run got past
//! the parsers. `cargo run --manifest-path fuzz/Cargo.toml --bin census -- DIR`
//! (default: dataplane/tests/corpus).
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "dataplane/tests/corpus".into());
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    let mut files = 0;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("census: {dir}: {e}");
            std::process::exit(1);
        }
    };
    for entry in entries.flatten() {
        let Ok(data) = std::fs::read(entry.path()) else { continue };
        files += 1;
        for v in rvs_fuzz::run(&data) {
            *tally.entry(format!("{v:?}")).or_default() += 1;
        }
    }
    println!("{files} inputs in {dir}");
    for (v, n) in tally {
        println!("{n:8}  {v}");
    }
}
