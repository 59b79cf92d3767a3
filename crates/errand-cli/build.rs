//! Puts the git commit the binary is built from into `errand --version`, as
//! `ERRAND_GIT_COMMIT`: from that variable when the build sets it (a container build without
//! `.git`), else from `git rev-parse`, else "unknown" (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=ERRAND_GIT_COMMIT");
    let commit = std::env::var("ERRAND_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    if commit.is_some() {
        // Build again when HEAD moves: HEAD itself (a checkout), the branch it points to (a
        // commit), and packed-refs (a gc).
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for path in watched {
            // Only files that exist: cargo runs a script watching a missing file every time.
            let file = git(&["rev-parse", "--git-path", &path]);
            if let Some(file) = file.filter(|f| std::path::Path::new(f).exists()) {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ERRAND_GIT_COMMIT={commit}");
}
