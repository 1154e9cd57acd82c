//! `loadtest`: the load-test suite (issue 4). Not implemented yet; the
//! shared client lives in `loadtest::client` and `chat-demo` uses it.

fn main() {
    eprintln!("loadtest: scenarios are not implemented yet (see the README status table)");
    std::process::exit(2);
}
