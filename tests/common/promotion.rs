//! The ground every `--promote-to` test stands on: a scratch directory
//! holding a ConfigMap source `src` (one key, `app.conf`, written by the
//! kubelet's atomic writer) and `app`, the directory the child reads.
//! Each test file adds its own child and check to it.

use super::kubelet::AtomicWriter;
use super::*;

pub struct Promotion {
    pub s: Scratch,
    pub kube: AtomicWriter,
    /// The child's directory (DIR).
    pub dir: PathBuf,
}

impl Promotion {
    /// The source first holds `first`; DIR does not exist yet.
    pub fn new(tag: &str, first: &[u8]) -> Promotion {
        let s = Scratch::new(tag);
        let kube = AtomicWriter::new(&s.path("src"));
        kube.write(&[("app.conf", first)]);
        let dir = s.path("app");
        Promotion { s, kube, dir }
    }

    /// Writes `bytes` to the source's `app.conf`, as the kubelet does.
    pub fn push(&self, bytes: impl AsRef<[u8]>) {
        self.kube.write(&[("app.conf", bytes.as_ref())]);
    }

    /// The file the child reads: `app.conf` in DIR.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("app.conf")
    }

    /// What DIR shows the child now ("" where it shows nothing).
    pub fn shown(&self) -> String {
        fs::read_to_string(self.conf()).unwrap_or_default()
    }

    /// The manager's arguments: the source promoted to DIR, `flags`
    /// (a 50 ms debounce unless they set one), then `script` as the
    /// command, run by `/bin/sh -c`.
    pub fn argv(&self, flags: &[&str], script: &str) -> Vec<String> {
        let mut args = vec![
            format!("--config={}", self.s.path("src").display()),
            format!("--promote-to={}", self.dir.display()),
        ];
        if !flags.iter().any(|a| a.starts_with("--debounce")) {
            args.push("--debounce=50ms".into());
        }
        args.extend(flags.iter().map(|a| a.to_string()));
        args.extend(["--", "/bin/sh", "-c", script].map(String::from));
        args
    }
}
