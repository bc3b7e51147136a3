//! The `warren` command.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use warren::args::{CaCommand, Cli, Command, ConfigCommand};
use warren::{agent, ca, config, demo};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("warren: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The wall clock in unix seconds: the one place certificates learn the
/// time.
fn now() -> Result<u64, String> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "the system clock is before 1970".to_owned())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Ca(CaCommand::Init(a)) => {
            let issued = ca::init(&a.trust_domain, &a.out, a.days, now()?, a.force)
                .map_err(|e| e.to_string())?;
            print!("created CA for trust domain {}\n{issued}", a.trust_domain);
        }
        Command::Ca(CaCommand::Issue(a)) => {
            let issued = ca::issue(&a.ca, &a.id, &a.out, a.days, now()?, a.force)
                .map_err(|e| e.to_string())?;
            print!("issued certificate\n{issued}");
        }
        Command::Ca(CaCommand::Ticket(a)) => {
            let issued = ca::ticket(&a.ca, &a.id, &a.out, &a.hubs, a.days, now()?, a.force)
                .map_err(|e| e.to_string())?;
            print!("wrote join ticket (it holds a private key: keep it secret)\n{issued}");
        }
        Command::Ca(CaCommand::Revoke(a)) => {
            print!("{}", ca::revoke(&a.list, &a.id, &a.reason)?);
        }
        Command::Agent(a) => {
            agent::log::init(a.log_format);
            agent::run(a.config, a.runtime)?;
        }
        Command::Hub(a) => {
            agent::log::init(a.log_format);
            agent::run_hub(a.config, a.runtime)?;
        }
        Command::Demo(a) => {
            agent::log::init(a.log_format);
            demo::run(a.runtime, a.port_base, now()?, a.hub)?;
        }
        Command::Config(ConfigCommand::Check(a)) => {
            let cfg = config::load(&a.file).map_err(|e| e.to_string())?;
            print!("{}", config::Summary(&cfg));
            if a.identity {
                let params = cfg
                    .identity
                    .load()
                    .map_err(|e| e.to_string())?
                    .into_params()
                    .map_err(|e| format!("identity: {e}"))?;
                println!(
                    "identity ok: {} (trust domain {})",
                    params.identity(),
                    params.trust().trust_domain()
                );
            }
        }
    }
    Ok(())
}
