//! What a cache entry holds, judged from its first bytes, and the `go object` header of Go
//! archives. Used by `sgcache inspect` and `sgcache stats`.
//!
//! What the go command stores (cmd/go/internal/work and internal/test):
//! - package archives (`!<arch>`), binaries (cached executables, vet/cgo helpers);
//! - compiler and linker stdout (`Subkey(actionID, "stdout")`): usually empty, otherwise
//!   warnings text;
//! - test results: the test's stdout, ending in an `ok  \t<pkg>\t…` line;
//! - test logs (`# test log\n…`), the record of files and env vars a test read;
//! - the source file list of a compile (`Subkey(actionID, "srcfiles")`: `./a.go\n./b.s\n`);
//! - module index data (`go index v2\n…`, cmd/go/internal/modindex);
//! - anything else (coverage profiles, vet facts, cgo outputs, embed data).

use crate::strconv::unquote;

/// Executable file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecFormat {
    /// ELF.
    Elf,
    /// Mach-O (thin).
    MachO,
    /// PE/COFF (Windows).
    Pe,
    /// Marked executable by the cache layout but of no recognised format.
    Unknown,
}

/// The kind of a cache entry's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A Go package archive (`!<arch>` with `__.PKGDEF`) or any other `ar` archive.
    PackageArchive,
    /// An executable or other object file.
    Executable(ExecFormat),
    /// Compiler or linker stdout: empty or short diagnostic text.
    ToolOutput,
    /// A `go test` result: the test's stdout.
    TestResult,
    /// A `go test` log of the inputs the test read.
    TestLog,
    /// The list of source files of a compile action (`srcfiles`).
    SourceFileList,
    /// A module index entry (`go index v2`).
    ModuleIndex,
    /// Anything else.
    Other,
}

impl Kind {
    /// A short human label, stable for use in tables and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Kind::PackageArchive => "package archive",
            Kind::Executable(ExecFormat::Elf) => "executable (ELF)",
            Kind::Executable(ExecFormat::MachO) => "executable (Mach-O)",
            Kind::Executable(ExecFormat::Pe) => "executable (PE)",
            Kind::Executable(ExecFormat::Unknown) => "executable",
            Kind::ToolOutput => "compiler/linker stdout",
            Kind::TestResult => "test result",
            Kind::TestLog => "test log",
            Kind::SourceFileList => "source file list",
            Kind::ModuleIndex => "module index",
            Kind::Other => "other",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Text shorter than this with no other signature counts as tool output.
const SHORT_TEXT: usize = 4096;

/// Classifies an output from its first bytes (a few KiB is plenty) and its total size.
/// Callers that know the entry was stored as an executable should say so themselves.
pub fn classify(first: &[u8], size: u64) -> Kind {
    if first.starts_with(b"!<arch>\n") || first.starts_with(b"<bigaf>\n") {
        return Kind::PackageArchive;
    }
    if first.starts_with(b"\x7fELF") {
        return Kind::Executable(ExecFormat::Elf);
    }
    if crate::macho::PREFIXES.iter().any(|p| first.starts_with(p)) {
        return Kind::Executable(ExecFormat::MachO);
    }
    if first.starts_with(b"MZ") && is_pe(first) {
        return Kind::Executable(ExecFormat::Pe);
    }
    if size == 0 {
        return Kind::ToolOutput;
    }
    if first.starts_with(b"# test log\n") {
        return Kind::TestLog;
    }
    if first.starts_with(b"go index v") {
        return Kind::ModuleIndex;
    }
    // Text: no NUL, valid UTF-8 except perhaps a character cut off at the end of `first`.
    let text = !first.contains(&0)
        && std::str::from_utf8(first).map_or_else(|e| e.error_len().is_none(), |_| true);
    if !text {
        return Kind::Other;
    }
    let looks_like_test = first.starts_with(b"ok  \t")
        || first.starts_with(b"=== RUN")
        || first.starts_with(b"--- FAIL")
        || first.starts_with(b"--- PASS")
        || first.starts_with(b"PASS\n")
        || first.starts_with(b"FAIL\n")
        || memchr::memmem::find(first, b"\nok  \t").is_some()
        || memchr::memmem::find(first, b"\nPASS\n").is_some()
        || memchr::memmem::find(first, b"\nFAIL\t").is_some();
    if looks_like_test {
        return Kind::TestResult;
    }
    // `./a.go\n./b.s\n` (compiler diagnostics also start with `./`, but `./x.go:3:2: …`).
    if first.starts_with(b"./")
        && first
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with(b"./") && !l.contains(&b':') && !l.contains(&b' '))
    {
        return Kind::SourceFileList;
    }
    if size < SHORT_TEXT as u64 && !first.contains(&0) {
        return Kind::ToolOutput;
    }
    Kind::Other
}

fn is_pe(b: &[u8]) -> bool {
    let Some(off) = b.get(0x3c..0x40) else {
        return true;
    };
    let off = u32::from_le_bytes([off[0], off[1], off[2], off[3]]) as usize;
    match b.get(off..off + 4) {
        Some(sig) => sig == b"PE\0\0",
        None => true,
    }
}

/// The header the Go compiler writes at the start of `__.PKGDEF`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectHeader {
    /// Target operating system.
    pub goos: String,
    /// Target architecture.
    pub goarch: String,
    /// Toolchain version, e.g. `go1.26.8` (a `devel …` string may contain spaces).
    pub version: String,
    /// Architecture settings, e.g. `GOAMD64=v1`.
    pub settings: Vec<String>,
    /// `GOEXPERIMENT`s in effect (the `X:` list).
    pub experiments: Vec<String>,
    /// The build ID, if the header has one.
    pub build_id: Option<String>,
    /// Whether the archive is for package main.
    pub main: bool,
}

/// Parses the `go object …` header of a Go archive from its first bytes (1 KiB is enough).
/// Returns `None` if the bytes are not a Go archive.
pub fn parse_object_header(first: &[u8]) -> Option<ObjectHeader> {
    let mut lines = first.split(|&b| b == b'\n');
    if lines.next()? != b"!<arch>" || !lines.next()?.starts_with(b"__.PKGDEF") {
        return None;
    }
    let obj = lines.next()?.strip_prefix(b"go object ")?;
    let obj = String::from_utf8_lossy(obj);
    let (rest, experiments) = match obj.rfind(" X:") {
        Some(i) => (&obj[..i], &obj[i + 3..]),
        None => (&obj[..], ""),
    };
    let mut words = rest.splitn(3, ' ');
    let goos = words.next()?.to_string();
    let goarch = words.next()?.to_string();
    let tail = words.next().unwrap_or("");
    let mut tokens: Vec<&str> = tail.split(' ').collect();
    let mut settings = Vec::new();
    while tokens.len() > 1 && tokens.last().is_some_and(|t| t.contains('=')) {
        settings.push(tokens.pop().unwrap_or_default().to_string());
    }
    settings.reverse();
    let mut hdr = ObjectHeader {
        goos,
        goarch,
        version: tokens.join(" "),
        settings,
        experiments: experiments
            .split(',')
            .filter(|s| !s.is_empty() && *s != "none")
            .map(String::from)
            .collect(),
        build_id: None,
        main: false,
    };
    for line in lines {
        if let Some(q) = line.strip_prefix(b"build id ") {
            hdr.build_id = unquote(q).map(|id| String::from_utf8_lossy(&id).into_owned());
        } else if line == b"main" {
            hdr.main = true;
        } else {
            break;
        }
    }
    Some(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_header() {
        let a = b"!<arch>\n__.PKGDEF       0           0     0     644     2763      `\ngo object linux amd64 go1.23.5 GOAMD64=v1 X:regabiwrappers,regabiargs,coverageredesign\nbuild id \"qRQXnZQLR__YgKmItO-G/J8fPZlmh0WBsXRQ5cAnn\"\nmain\n\n";
        let h = parse_object_header(a).unwrap();
        assert_eq!(h.goos, "linux");
        assert_eq!(h.goarch, "amd64");
        assert_eq!(h.version, "go1.23.5");
        assert_eq!(h.settings, ["GOAMD64=v1"]);
        assert_eq!(
            h.experiments,
            ["regabiwrappers", "regabiargs", "coverageredesign"]
        );
        assert_eq!(
            h.build_id.as_deref(),
            Some("qRQXnZQLR__YgKmItO-G/J8fPZlmh0WBsXRQ5cAnn")
        );
        assert!(h.main);
        assert_eq!(classify(a, 3000), Kind::PackageArchive);

        let d = b"!<arch>\n__.PKGDEF 0\ngo object darwin amd64 devel +3b33af5d68 Thu Oct 5 16:59:00 2017 -0400 X:framepointer\n\n";
        let h = parse_object_header(d).unwrap();
        assert_eq!(h.version, "devel +3b33af5d68 Thu Oct 5 16:59:00 2017 -0400");
        assert_eq!(h.experiments, ["framepointer"]);
        assert_eq!(h.build_id, None);
        assert!(parse_object_header(b"!<arch>\nfoo\n").is_none());
    }

    #[test]
    fn kinds() {
        assert_eq!(classify(b"", 0), Kind::ToolOutput);
        assert_eq!(classify(b"./x.go:3:2: warning\n", 20), Kind::ToolOutput);
        assert_eq!(
            classify(b"ok  \texample.com/x\t0.01s\n", 25),
            Kind::TestResult
        );
        assert_eq!(
            classify(b"=== RUN   TestX\n--- FAIL: TestX\nFAIL\n", 40),
            Kind::TestResult
        );
        assert_eq!(classify(b"# test log\ngetenv HOME\n", 30), Kind::TestLog);
        assert_eq!(classify(b"./a.go\n./b_amd64.s\n", 18), Kind::SourceFileList);
        assert_eq!(
            classify(b"go index v2\n\x98z\x00\x00", 900),
            Kind::ModuleIndex
        );
        assert_eq!(
            classify(b"\x7fELF\x02\x01\x01", 9000),
            Kind::Executable(ExecFormat::Elf)
        );
        assert_eq!(
            classify(b"\xcf\xfa\xed\xfe", 9000),
            Kind::Executable(ExecFormat::MachO)
        );
        assert_eq!(
            classify(b"\x00\x01\x02\x03\xff\xfe\xfd\xfc\xfb", 9000),
            Kind::Other
        );
    }
}
