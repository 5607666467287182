//! `hearth`: the household's own AI. This binary is the command line over the workspace's
//! crates; it owns argument parsing, terminal output and turning errors into one clear line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod load;
mod mdns;

/// Hearth runs open language models on your own machines.
#[derive(Parser)]
#[command(name = "hearth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a model: a catalog name, an http(s) URL of a .gguf, or a local path.
    Pull(cmd::pull::PullArgs),
    /// List the models on this machine.
    Models(cmd::models::ModelsArgs),
    /// Answer one prompt and exit (streams the reply to stdout, statistics to stderr).
    Run(cmd::run::RunArgs),
    /// Chat in the terminal; the conversation's KV cache is kept between turns.
    Chat(cmd::chat::ChatArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(cmd::tokenize::TokenizeArgs),
    /// Measure prompt processing and generation speed, load time and peak memory.
    Bench(cmd::bench::BenchArgs),
    /// How well a model predicts a text (perplexity, llama-perplexity's method), and its KL
    /// divergence from a base run of another model or program.
    Perplexity(cmd::perplexity::PerplexityArgs),
    /// Will a model fit this machine (or a named one), how fast, for how many users; reads only
    /// the model's header.
    Plan(cmd::plan::PlanArgs),
    /// Serve the household: the web page everyone chats on, and the OpenAI-compatible API for apps.
    Serve(cmd::serve::ServeArgs),
    /// Check every GPU kernel against the CPU on this machine's GPU and print a table.
    GpuSelftest(cmd::devices::SelftestArgs),
    /// Find Hearth servers on the home network (mDNS).
    Discover(cmd::discover::DiscoverArgs),
    /// Re-hash every model file hearth.lock pins and say per model: OK, differs or missing.
    Verify(cmd::verify::VerifyArgs),
    /// What hearth.lock pins for the models the household is served (`show`), and pinning a
    /// change the keeper wants (`accept`).
    Lock(cmd::lock::LockArgs),
    /// Print a PDF's or a picture's text page by page, as Hearth reads documents, saying for
    /// each page whether the text came from the text layer or needs OCR.
    Read(cmd::read::ReadArgs),
    /// One document page read in a worker process with limits (started by `read`, not people).
    #[command(name = "__docs-worker", hide = true)]
    DocsWorker,
    /// The household's pool of machines, on the head: pair one (`invite`), see them (`list`),
    /// forget one (`remove`).
    Pool(cmd::pool::PoolArgs),
    /// Make this machine a member of the household's pool: `join CODE` once, then `hearth node`.
    Node(cmd::pool::NodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A worker answers on stdout and nothing else: no logging set up, no other output.
    if let Command::DocsWorker = cli.command {
        return cmd::read::worker();
    }
    // A server logs one line per request; the other commands only warnings.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Node(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Pull(a) => cmd::pull::run(a),
        Command::Models(a) => cmd::models::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Perplexity(a) => cmd::perplexity::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::GpuSelftest(a) => cmd::devices::selftest(a),
        Command::Discover(a) => cmd::discover::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Lock(a) => cmd::lock::run(a),
        Command::Read(a) => cmd::read::run(a),
        Command::DocsWorker => unreachable!("handled before logging is set up"),
        Command::Pool(a) => cmd::pool::run_pool(a),
        Command::Node(a) => cmd::pool::run_node(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain, no backtrace: this is for people, not debuggers.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
