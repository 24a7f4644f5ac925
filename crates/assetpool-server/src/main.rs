//! The `assetpool` binary.

use clap::FromArgMatches as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!(" at {}:{}", location.file(), location.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{location}; please report it");
    }));
    // No name, email, id, reason or URL holds a control character: refused
    // here once for every argument of every command, before anything reads it.
    if let Some(position) = std::env::args_os()
        .skip(1)
        .position(|argument| assetpool_wire::text::contains_control(&argument.to_string_lossy()))
    {
        eprintln!(
            "error: argument {} holds a control character (NUL, escape, line break, ...)",
            position + 1
        );
        return ExitCode::from(2);
    }
    let parsed = assetpool_server::cli::command()
        .try_get_matches()
        .and_then(|matches| {
            assetpool_server::cli::Cli::from_arg_matches(&matches).map(|cli| (cli, matches))
        });
    let cli = match parsed {
        Ok((cli, matches)) => {
            for warning in assetpool_server::cli::secret_args::command_line_warnings(&matches) {
                eprintln!("warning: {warning}");
            }
            cli
        }
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
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
            return ExitCode::from(2);
        }
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
    match runtime.block_on(assetpool_server::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the causes hold (a stored name with a
            // terminal escape included).
            let message: Vec<String> = error.chain().map(ToString::to_string).collect();
            let line = message.join(": ").replace('\n', " ");
            eprintln!("error: {}", assetpool_wire::text::escape_control(&line));
            ExitCode::FAILURE
        }
    }
}
