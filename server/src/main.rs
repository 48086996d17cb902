//! `baton`: the scheduler server and its command line.

use anyhow::{bail, Context};
use baton_schema::access::{InstanceAccess, Role};
use baton_server::client::{self, Remote};
use baton_server::config::{Config, Overrides};
use baton_server::db::{self, DatabaseUrl, Db, DbConn};
use baton_server::service::users;
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;

/// Baton: a workload-automation scheduler. `baton serve` runs the server, its API at /graphql and
/// its web UI at /; the other commands administer it.
#[derive(Parser, Debug)]
#[command(name = "baton", version)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "BATON_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the database is, for commands that open it directly.
#[derive(Args, Debug, Clone)]
struct Storage {
    /// Directory of the embedded SQLite database (default ./data).
    #[arg(long, env = "BATON_DATA")]
    data: Option<PathBuf>,
    /// postgres://user:pass@host/db, or a SQLite file path.
    #[arg(long, env = "BATON_DATABASE_URL")]
    database_url: Option<String>,
}

impl Storage {
    /// One connection, closed before the command returns (see `db::connect_once`).
    fn open(self) -> anyhow::Result<DbConn> {
        let url = match self.database_url {
            Some(u) => DatabaseUrl::parse(&u),
            None => DatabaseUrl::sqlite_in(&self.data.unwrap_or_else(|| PathBuf::from("data"))),
        };
        db::connect_once(&url)
    }
}

/// A server to talk to, and the token to use (default: what `baton login` saved).
#[derive(Args, Debug, Clone)]
struct RemoteArgs {
    /// The server's base URL (default: the one `baton login` used, else http://127.0.0.1:8080).
    #[arg(long, env = "BATON_SERVER")]
    server: Option<String>,
    /// A session or API token (default: the one `baton login` saved).
    #[arg(long, env = "BATON_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: the scheduler, the API at /graphql and the web UI at /.
    Serve {
        /// A TOML file with listen, data_dir and database_url.
        #[arg(long, env = "BATON_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long, env = "BATON_LISTEN")]
        listen: Option<String>,
        /// Directory for the embedded SQLite database and other state (default ./data).
        #[arg(long, env = "BATON_DATA")]
        data: Option<PathBuf>,
        /// postgres://user:pass@host/db, or a SQLite file path (default DATA/baton.db).
        #[arg(long, env = "BATON_DATABASE_URL")]
        database_url: Option<String>,
        /// Serve HTTPS and WSS with this PEM certificate chain (with --tls-key).
        #[arg(long, env = "BATON_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, env = "BATON_TLS_KEY")]
        tls_key: Option<PathBuf>,
    },
    /// Manage agent enrollment tokens directly in the database.
    #[command(name = "agent-token")]
    AgentToken {
        #[command(subcommand)]
        command: AgentTokenCommand,
    },
    /// Manage the credential store's master key.
    #[command(name = "master-key")]
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
    /// Manage users directly in the database.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Log in to a server and save the session token for the other commands.
    Login {
        #[command(flatten)]
        remote: RemoteArgs,
        #[arg(long)]
        username: String,
        /// Read the password from standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Write the definitions document (JSON) of a server to standard output or a file.
    Export {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only these instances (repeatable); all you may see by default.
        #[arg(long = "instance")]
        instances: Vec<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import a definitions document: validated whole, applied in one transaction or not at all.
    Import {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The document (JSON); `-` reads standard input.
        file: PathBuf,
        /// Show the plan without applying it.
        #[arg(long)]
        dry_run: bool,
        /// Also delete what the document's instances have that it lacks.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AgentTokenCommand {
    /// Create an enrollment token; it is printed as the last line (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand, Debug)]
enum MasterKeyCommand {
    /// Seal every credential again under a new master key (stop the server first). The old key
    /// comes from BATON_MASTER_KEY or the key file; a new key file replaces the old one, and a
    /// key from the environment is printed once, as the last line, to set before restarting.
    Rotate {
        /// The master key file (default DATA/master.key).
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        storage: Storage,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user (reads the password from standard input).
    Create {
        #[arg(long)]
        username: String,
        /// viewer, user, operator, admin or superadmin.
        #[arg(long)]
        role: String,
        /// `*` or a comma-separated list of instance names.
        #[arg(long, default_value = "*")]
        instances: String,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        storage: Storage,
    },
}

fn init_logs(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).context("reading the password from standard input")?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn api_error(e: baton_server::service::SvcError) -> anyhow::Error {
    let api: baton_graphql::ApiError = e.into();
    anyhow::anyhow!(api.message())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen, data, database_url, tls_cert, tls_key } => {
            let config =
                Config::load(config.as_deref(), Overrides { listen, data_dir: data, database_url, tls_cert, tls_key })?;
            tracing::info!(database = %config.database.redacted(), backend = config.database.backend_name(), "opening the database");
            let _serving = config.database.lock_for_serving()?;
            let db = Db::open(config.database.clone())?;
            let mut conn = db.conn().map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(password) = users::bootstrap(&mut conn, chrono::Utc::now()).map_err(api_error)? {
                println!(
                    "baton: created the first superadmin: username admin, password {password} (shown once; change it)"
                );
            }
            drop(conn);
            let rt = actix_web::rt::System::new();
            rt.block_on(baton_server::http::serve(config, db)).context("serving")
        }
        Command::User { command: UserCommand::Create { username, role, instances, password_stdin, storage } } => {
            if !password_stdin {
                bail!("--password-stdin is required: pass the password on standard input");
            }
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
            let instances =
                InstanceAccess::parse(&instances).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
            let password = read_password_stdin()?;
            let mut conn = storage.open()?;
            let id = users::insert_user(&mut conn, chrono::Utc::now(), &username, &password, role, &instances)
                .map_err(api_error)?;
            println!("created user {username} (id {id}, role {role})");
            Ok(())
        }
        Command::AgentToken { command: AgentTokenCommand::Create { name, storage } } => {
            let mut conn = storage.open()?;
            let (token, _) = baton_server::service::agents::create_token(
                &mut conn,
                chrono::Utc::now(),
                &name,
                "baton agent-token",
                &baton_schema::access::InstanceAccess::All,
            )
            .map_err(api_error)?;
            println!("agent token {name} created; give it to baton-agent --token:");
            println!("{token}");
            Ok(())
        }
        Command::MasterKey { command: MasterKeyCommand::Rotate { key_file, storage } } => {
            let key_file = key_file
                .unwrap_or_else(|| storage.data.clone().unwrap_or_else(|| PathBuf::from("data")).join("master.key"));
            let env_key = std::env::var(baton_server::vault::KEY_ENV).ok();
            let mut conn = storage.open()?;
            let done = baton_server::vault::rotate(&mut conn, env_key.as_deref(), &key_file)?;
            match done.new_env_key {
                Some(key) => {
                    println!("{} credential(s) sealed under a new master key; set BATON_MASTER_KEY to it:", done.count);
                    println!("{key}");
                }
                None => println!(
                    "{} credential(s) sealed under a new master key, now in {}",
                    done.count,
                    key_file.display()
                ),
            }
            Ok(())
        }
        Command::Login { remote, username, password_stdin } => {
            let remote = Remote::resolve(remote.server, None)?;
            let password = if password_stdin {
                read_password_stdin()?
            } else {
                eprint!("password for {username}: ");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end().to_string()
            };
            client::login(&remote, &username, &password)?;
            println!(
                "logged in to {} as {username}; token saved in {}",
                remote.server,
                client::credentials_path().display()
            );
            Ok(())
        }
        Command::Export { remote, instances, output } => {
            let remote = Remote::resolve(remote.server, remote.token)?;
            let doc = client::export(&remote, &instances)?;
            let text = serde_json::to_string_pretty(&doc)? + "\n";
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Import { remote, file, dry_run, replace } => {
            let remote = Remote::resolve(remote.server, remote.token)?;
            let text = if file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::stdin().read_to_string(&mut t)?;
                t
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let document: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
            let plan = client::import(&remote, document, dry_run, replace)?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
            let errors = plan.get("errors").and_then(|e| e.as_array()).map_or(0, Vec::len);
            if errors > 0 {
                bail!("the document has {errors} problem(s); nothing was imported");
            }
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_json);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the cause chain (libpq, for one, writes several).
            let msg = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("baton: error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
