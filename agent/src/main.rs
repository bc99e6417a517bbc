use clap::Parser;

fn main() -> std::process::ExitCode {
    // Every file and directory the agent (and the dnsmasq it starts) creates
    // gets at most 0644 / 0755 whatever umask it was started with; the
    // private ones are set tighter where they are made (README "Security").
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    raise_open_files_limit();
    kvmnet::cli::run(kvmnet::cli::Cli::parse())
}

/// Raises the soft limit on open files to the hard one: systemd and shells
/// start services at 1024, which a host with many networks (netlink
/// sockets, pidfds, dnsmasq log files) and metrics clients can reach. The
/// old limit stays when raising fails: nothing to report that early.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
