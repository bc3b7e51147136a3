//! The `warren` command.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use warren::args::{CaCommand, Cli, Command, ConfigCommand};
use warren::{agent, ca, config, demo, status};

fn main() -> ExitCode {
    // Before any thread starts: see its doc for why it must come first.
    warren_host::own_heap_trimming();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
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

fn run(cli: Cli) -> Result<ExitCode, String> {
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
            let issued = ca::ticket(
                &a.ca,
                &a.id,
                &a.out,
                &a.hubs,
                &a.hub_identities,
                a.days,
                now()?,
                a.force,
            )
            .map_err(|e| e.to_string())?;
            print!("wrote join ticket (it holds a private key: keep it secret)\n{issued}");
        }
        Command::Ca(CaCommand::Revoke(a)) => {
            let target = match (a.id, a.serial) {
                (Some(id), _) => ca::Revocation::Identity(id),
                (None, Some(serial)) => ca::Revocation::Serial(serial),
                (None, None) => return Err("name --id or --serial".into()),
            };
            print!("{}", ca::revoke(&a.list, &target, &a.reason)?);
        }
        Command::Agent(a) => {
            agent::log::init(a.log_format);
            agent::run(a.config, a.ticket, a.runtime)?;
        }
        Command::Hub(a) => {
            agent::log::init(a.log_format);
            agent::run_hub(a.config, a.ticket, a.runtime)?;
        }
        Command::Demo(a) => {
            agent::log::init(a.log_format);
            demo::run(a.runtime, a.port_base, now()?, a.hub)?;
        }
        Command::Status(a) => print!("{}", status::summary(a.admin)?),
        // Its own exit codes: 1 for a violated invariant, 2 for a bad run.
        Command::Sim(command) => return Ok(warren_sim::cli::execute(&command)),
        Command::Bench(a) => {
            let args = match a.agent {
                Some(rest) => warren_benches::mesh::Args::Agent(rest),
                None => warren_benches::mesh::Args::Bench { quick: a.quick },
            };
            let me = warren_benches::mesh::agents::SelfExec {
                exe: std::env::current_exe().map_err(|e| e.to_string())?,
                prefix: vec!["bench".into()],
            };
            warren_benches::mesh::main(args, &me)?;
        }
        Command::Config(ConfigCommand::Check(a)) => {
            let cfg = config::load_with_ticket(&a.file, a.ticket.as_deref())
                .map_err(|e| e.to_string())?;
            print!("{}", config::Summary(&cfg));
            if a.identity {
                let loaded = cfg.identity.load().map_err(|e| e.to_string())?;
                let hubs = loaded.hubs.clone();
                if let Some(dates) = &loaded.dates {
                    println!("warning: the agent's certificate: {dates}");
                }
                let params = loaded.into_params().map_err(|e| format!("identity: {e}"))?;
                println!(
                    "identity ok: {} (trust domain {})",
                    params.identity(),
                    params.trust().trust_domain()
                );
                for hub in hubs {
                    println!("hub:          {hub}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
