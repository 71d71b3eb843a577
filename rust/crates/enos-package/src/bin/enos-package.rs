//! Builds, signs and checks resource packages (for OEMs and tests; `scripts/package` wraps it).

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "EnOS Edge resource packages: keygen, build, verify")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes a new ed25519 key pair: <name>.key (private, keep it secret) and <name>.pub.
    Keygen { name: PathBuf },
    /// Packs a directory (collector.toml, points/*.csv, models/*, certs/*) signed with KEY.
    Build {
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// Private key (PEM PKCS#8, e.g. `openssl genpkey -algorithm ed25519`).
        #[arg(long)]
        key: PathBuf,
        dir: PathBuf,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Checks a package against a public key and lists its items.
    Verify {
        #[arg(long)]
        public: PathBuf,
        package: PathBuf,
    },
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn run() -> Result<(), String> {
    match Args::parse().cmd {
        Cmd::Keygen { name } => {
            let (private, public) = enos_package::key::generate();
            let (k, p) = (name.with_extension("key"), name.with_extension("pub"));
            enos_runtime::fs::write_atomic(&k, private.as_bytes(), 0o600).map_err(|e| format!("{}: {e}", k.display()))?;
            enos_runtime::fs::write_atomic(&p, public.as_bytes(), 0o644).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("wrote {} and {}", k.display(), p.display());
        }
        Cmd::Build { name, version, key, dir, out } => {
            enos_package::version::parse(&version)?;
            let pair = enos_package::key::private_from_pem(&String::from_utf8_lossy(&read(&key)?))?;
            let mut items = Vec::new();
            let mut add = |rel: String, p: &Path| -> Result<(), String> {
                let kind = enos_package::build::kind_of_path(&rel)
                    .ok_or_else(|| format!("{rel}: not a package item (collector.toml, points/, models/, certs/, plugins/<name>/)"))?;
                items.push(enos_package::build::Source { path: rel, kind, data: read(p)? });
                Ok(())
            };
            let top = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut entries: Vec<_> = top.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let n = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    let mut sub: Vec<_> = std::fs::read_dir(e.path()).map_err(|er| er.to_string())?.flatten().collect();
                    sub.sort_by_key(|s| s.file_name());
                    for s in sub {
                        let rel = format!("{n}/{}", s.file_name().to_string_lossy());
                        if n == "plugins" && s.path().is_dir() {
                            // A plugin: plugins/<name>/{plugin.toml,<component>}.
                            let mut files: Vec<_> = std::fs::read_dir(s.path()).map_err(|er| er.to_string())?.flatten().collect();
                            files.sort_by_key(|f| f.file_name());
                            for f in files {
                                add(format!("{rel}/{}", f.file_name().to_string_lossy()), &f.path())?;
                            }
                        } else {
                            add(rel, &s.path())?;
                        }
                    }
                } else {
                    add(n, &e.path())?;
                }
            }
            let bytes = enos_package::build::build(&name, &version, &items, Some(&pair));
            std::fs::write(&out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("wrote {} ({} items, {} bytes)", out.display(), items.len(), bytes.len());
        }
        Cmd::Verify { public, package } => {
            let key = enos_package::key::public_from_pem(&String::from_utf8_lossy(&read(&public)?))?;
            let v = enos_package::verify(&read(&package)?, &key).map_err(|e| e.to_string())?;
            println!("{} {}: signature and digests good", v.manifest.name, v.manifest.version);
            for i in &v.manifest.items {
                println!("  {} ({}, sha256 {})", i.path, i.kind.word(), i.sha256);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enos-package: {e}");
            ExitCode::FAILURE
        }
    }
}
