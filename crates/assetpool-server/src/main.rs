//! The `assetpool` binary.

use assetpool_server::cli::{self, config_check::Invocation, Cli};
use clap::FromArgMatches as _;
use std::ffi::OsString;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!(" at {}:{}", location.file(), location.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{location}; please report it");
    }));
    let arguments: Vec<OsString> = std::env::args_os().collect();
    let (cli, invocation) = match parse(&arguments) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, invocation)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The command line, with the config file's values and the `_FILE` forms of
/// secrets as the defaults of their options; else the exit code after
/// `--help`, `--version` or one error line.
fn parse(arguments: &[OsString]) -> Result<(Cli, Invocation), ExitCode> {
    // No name, email, id, reason or URL holds a control character: refused
    // here once for every argument of every command, before anything reads it.
    if let Some(position) = arguments
        .iter()
        .skip(1)
        .position(|argument| assetpool_wire::text::contains_control(&argument.to_string_lossy()))
    {
        eprintln!(
            "error: argument {} holds a control character (NUL, escape, line break, ...)",
            position + 1
        );
        return Err(ExitCode::from(2));
    }
    let (mut command, layers) = match cli::layers::apply(cli::command(), arguments) {
        Ok(layered) => layered,
        Err(error) => {
            // --help and --version work whatever the config file holds.
            if let Err(help) = cli::command().try_get_matches_from(arguments) {
                if !help.use_stderr() {
                    let _ = help.print();
                    return Err(ExitCode::SUCCESS);
                }
            }
            eprintln!("error: {}", one_line(&error));
            return Err(ExitCode::FAILURE);
        }
    };
    let parsed = command
        .try_get_matches_from_mut(arguments)
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    match parsed {
        Ok((cli, matches)) => {
            for warning in cli::secret_args::command_line_warnings(&matches) {
                eprintln!("warning: {warning}");
            }
            let invocation = Invocation {
                command,
                matches,
                layers,
            };
            Ok((cli, invocation))
        }
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            Err(ExitCode::SUCCESS)
        }
        Err(error) => {
            // One line, as every other error: clap's message up to its usage part.
            let rendered = error.to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                .collect();
            let message = if message.is_empty() {
                "error: invalid command line".to_owned()
            } else {
                message.join(" ")
            };
            eprintln!("{message} (see --help)");
            Err(ExitCode::from(2))
        }
    }
}

/// An error and its causes on one line, control characters escaped (a
/// stored name with a terminal escape included).
fn one_line(error: &anyhow::Error) -> String {
    let message: Vec<String> = error.chain().map(ToString::to_string).collect();
    let line = message.join(": ").replace('\n', " ");
    assetpool_wire::text::escape_control(&line).into_owned()
}
