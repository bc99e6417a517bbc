use clap::Parser;

fn main() -> std::process::ExitCode {
    // Every file and directory the agent (and the dnsmasq it starts) creates
    // gets at most 0644 / 0755 whatever umask it was started with; the
    // private ones are set tighter where they are made (README "Security").
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    kvmnet::cli::run(kvmnet::cli::Cli::parse())
}
