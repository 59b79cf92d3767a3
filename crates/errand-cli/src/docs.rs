//! `errand completions SHELL` and `errand manpages DIR`: shell completions and man pages,
//! generated from the same clap definitions as `--help`, so they cannot drift from it. They
//! need no configuration and no database.

use crate::cli::Cli;
use anyhow::Context;
use clap::CommandFactory;
use std::path::Path;

/// Writes the completion script of `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "errand", &mut std::io::stdout());
}

/// Writes `errand.1` and one page per command and subcommand (`errand-jobs-list.1`) into
/// `dir`, and returns how many it wrote.
pub fn manpages(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut command = Cli::command();
    command.build(); // fills in each subcommand's full name and the help subcommands
    let mut written = 0;
    write_tree(&command, "errand", dir, &mut written)?;
    Ok(written)
}

fn write_tree(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    clap_mangen::Man::new(command.clone())
        .render(&mut file)
        .with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_tree(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
