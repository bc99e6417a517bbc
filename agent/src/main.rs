use clap::Parser;

fn main() -> std::process::ExitCode {
    kvmnet::cli::run(kvmnet::cli::Cli::parse())
}
