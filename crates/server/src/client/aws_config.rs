//! Endpoint, credentials and region of the client subcommands, resolved the way the AWS CLI
//! (botocore) does, so a machine set up for `aws kinesisvideo …` works unchanged.
//!
//! Credentials, first match wins:
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) — skipped when
//!    `--profile` is given, as botocore skips its environment provider for an explicit profile;
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//!    `~/.aws/credentials`), section `[NAME]`;
//! 3. the config file (`AWS_CONFIG_FILE`, default `~/.aws/config`), section `[profile NAME]`
//!    (`[default]` for the default profile).
//!
//! NAME is `--profile`, else `AWS_PROFILE`, else `default`. Region: `--region`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, the profile's `region` in the config file, else `us-east-1` (an
//! openkvs server accepts any region in the signature scope). CA bundle for https:
//! `--ca-bundle`, `AWS_CA_BUNDLE`, the profile's `ca_bundle`.
//!
//! Not supported (a clear error says how to export static keys instead): `role_arn`,
//! `credential_process`, SSO and web-identity profiles.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::cli::ClientArgs;
use crate::client::http::Endpoint;

/// Region used when none is configured anywhere.
pub(crate) const DEFAULT_REGION: &str = "us-east-1";

/// One `[section]` of an INI file, keys lower-cased, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) entries: Vec<(String, String)>,
}

impl Section {
    /// The value of `key` (case-insensitive), `None` when absent or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// An AWS-style INI file (`~/.aws/credentials`, `~/.aws/config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ini {
    pub(crate) sections: Vec<Section>,
}

/// A syntax error in an INI file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for IniError {}

impl Ini {
    /// Parses the file the way botocore's `RawConfigParser` does: `[section]` headers,
    /// `key = value` or `key: value` (split at the first `=` or `:`, both sides trimmed, keys
    /// lower-cased), full-line comments starting with `#` or `;`, indented lines continuing the
    /// previous value (nested settings such as `s3 =` + indented keys). Inline comments are
    /// *not* stripped (`key = a # b` has the value `a # b`), as in botocore. Duplicate sections
    /// or keys, keys outside a section, and lines without a delimiter are errors, as they make
    /// the AWS CLI fail too.
    pub(crate) fn parse(text: &str) -> Result<Ini, IniError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ini = Ini::default();
        // Index of the entry an indented line continues.
        let mut last_key: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |message: String| IniError {
                line: line_no,
                message,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let indented = raw.starts_with([' ', '\t']);
            if indented && let (Some(k), Some(section)) = (last_key, ini.sections.last_mut()) {
                let value = &mut section.entries[k].1;
                value.push('\n');
                value.push_str(line);
                continue;
            }
            if let Some(inner) = line.strip_prefix('[') {
                let Some(name) = inner.strip_suffix(']') else {
                    return Err(err(format!("`{line}`: a section header ends with `]`")));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(err("empty section name `[]`".to_owned()));
                }
                if ini.sections.iter().any(|s| s.name == name) {
                    return Err(err(format!("section [{name}] appears twice")));
                }
                ini.sections.push(Section {
                    name: name.to_owned(),
                    entries: Vec::new(),
                });
                last_key = None;
                continue;
            }
            let Some(pos) = line.find(['=', ':']) else {
                return Err(err(format!(
                    "`{line}` is neither `[section]` nor `key = value`"
                )));
            };
            let key = line[..pos].trim().to_ascii_lowercase();
            let value = line[pos + 1..].trim().to_owned();
            if key.is_empty() {
                return Err(err(format!(
                    "`{line}` has no key before `{}`",
                    &line[pos..=pos]
                )));
            }
            let Some(section) = ini.sections.last_mut() else {
                return Err(err(format!(
                    "`{key}` comes before any [section] header (e.g. [default])"
                )));
            };
            if section.entries.iter().any(|(k, _)| *k == key) {
                return Err(err(format!("`{key}` appears twice in [{}]", section.name)));
            }
            section.entries.push((key, value));
            last_key = Some(section.entries.len() - 1);
        }
        Ok(ini)
    }

    /// The section named exactly `name`.
    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The config-file section of profile `name`: `[profile NAME]`, or for `default` also
    /// `[default]` (botocore accepts both and prefers `[profile default]`).
    pub(crate) fn profile(&self, name: &str) -> Option<&Section> {
        let prefixed = self.sections.iter().find(|s| {
            let mut words = s.name.split_whitespace();
            words.next() == Some("profile") && words.next() == Some(name) && words.next().is_none()
        });
        prefixed.or_else(|| {
            if name == "default" {
                self.section("default")
            } else {
                None
            }
        })
    }
}

/// Everything a client subcommand needs to talk to a server.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) credentials: sigv4::Credentials,
    pub(crate) region: String,
    /// Extra trusted CA certificates (PEM) for https endpoints.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// Where the credentials came from, for messages.
    pub(crate) credentials_source: String,
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub(crate) type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<Option<String>>;
/// Looks up an environment variable.
pub(crate) type GetEnv<'a> = &'a dyn Fn(&str) -> Option<String>;

fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Resolves the client configuration from the command line, the process environment and the
/// AWS files.
pub(crate) fn resolve(args: &ClientArgs) -> anyhow::Result<ClientConfig> {
    resolve_with(
        args,
        &|name| std::env::var(name).ok().filter(|v| !v.is_empty()),
        &read_optional,
    )
}

fn home_dir(env: GetEnv<'_>) -> Option<PathBuf> {
    env("HOME")
        .or_else(|| env("USERPROFILE"))
        .map(PathBuf::from)
}

/// `~/x` → `$HOME/x`, as botocore expands the file variables.
fn expand_tilde(path: &str, env: GetEnv<'_>) -> PathBuf {
    match (path.strip_prefix("~/"), home_dir(env)) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if path == "~" => home_dir(env).unwrap_or_else(|| PathBuf::from(path)),
        _ => PathBuf::from(path),
    }
}

/// An AWS file, parsed, with its path for messages.
struct AwsFile {
    path: PathBuf,
    ini: Option<Ini>,
}

impl AwsFile {
    fn load(
        var: &str,
        default_name: &str,
        env: GetEnv<'_>,
        read: ReadFile<'_>,
    ) -> anyhow::Result<Self> {
        let path = match env(var) {
            Some(p) => expand_tilde(&p, env),
            None => match home_dir(env) {
                Some(home) => home.join(".aws").join(default_name),
                None => {
                    return Ok(AwsFile {
                        path: PathBuf::from(format!("~/.aws/{default_name}")),
                        ini: None,
                    });
                }
            },
        };
        let text = read(&path).with_context(|| format!("reading {}", path.display()))?;
        let ini = match text {
            Some(t) => Some(
                Ini::parse(&t)
                    .with_context(|| format!("{} is not a valid AWS INI file", path.display()))?,
            ),
            None => None,
        };
        Ok(AwsFile { path, ini })
    }
}

/// Keys that mean a profile gets its credentials some way openkvs does not implement.
const UNSUPPORTED_KEYS: [(&str, &str); 6] = [
    ("role_arn", "assume-role"),
    ("credential_process", "credential_process"),
    ("sso_session", "SSO"),
    ("sso_start_url", "SSO"),
    ("web_identity_token_file", "web identity"),
    ("credential_source", "credential_source"),
];

fn static_credentials(
    section: &Section,
    profile: &str,
    path: &Path,
) -> anyhow::Result<Option<sigv4::Credentials>> {
    let akid = section.get("aws_access_key_id");
    let secret = section.get("aws_secret_access_key");
    match (akid, secret) {
        (Some(akid), Some(secret)) => {
            let mut c = sigv4::Credentials::new(akid, secret);
            if let Some(token) = section
                .get("aws_session_token")
                .or_else(|| section.get("aws_security_token"))
            {
                c = c.with_session_token(token);
            }
            Ok(Some(c))
        }
        (Some(_), None) => bail!(
            "profile `{profile}` in {} has aws_access_key_id but no aws_secret_access_key",
            path.display()
        ),
        (None, Some(_)) => bail!(
            "profile `{profile}` in {} has aws_secret_access_key but no aws_access_key_id",
            path.display()
        ),
        (None, None) => {
            if let Some((key, what)) = UNSUPPORTED_KEYS
                .iter()
                .find(|(k, _)| section.get(k).is_some())
            {
                bail!(
                    "profile `{profile}` in {} gets its credentials through {what} (`{key}`), which \
                     openkvs does not support. Export static credentials instead:\n  \
                     eval \"$(aws configure export-credentials --profile {profile} --format env)\"",
                    path.display()
                );
            }
            Ok(None)
        }
    }
}

/// [`resolve`] with the environment and file system injected, for tests.
pub(crate) fn resolve_with(
    args: &ClientArgs,
    env: GetEnv<'_>,
    read: ReadFile<'_>,
) -> anyhow::Result<ClientConfig> {
    let endpoint = Endpoint::parse(&args.endpoint_url).with_context(|| {
        format!(
            "--endpoint-url / OPENKVS_ENDPOINT_URL `{}`",
            args.endpoint_url
        )
    })?;

    let explicit_profile = args.profile.clone();
    let env_profile = env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE"));
    let profile = explicit_profile
        .clone()
        .or_else(|| env_profile.clone())
        .unwrap_or_else(|| "default".to_owned());
    let named_profile = explicit_profile.is_some() || env_profile.is_some();

    let creds_file = AwsFile::load("AWS_SHARED_CREDENTIALS_FILE", "credentials", env, read)?;
    let config_file = AwsFile::load("AWS_CONFIG_FILE", "config", env, read)?;
    let creds_section = creds_file.ini.as_ref().and_then(|i| i.section(&profile));
    let config_section = config_file.ini.as_ref().and_then(|i| i.profile(&profile));

    let mut found: Option<(sigv4::Credentials, String)> = None;
    if explicit_profile.is_none() {
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(akid), Some(secret)) => {
                let mut c = sigv4::Credentials::new(akid, secret);
                if let Some(token) = env("AWS_SESSION_TOKEN").or_else(|| env("AWS_SECURITY_TOKEN"))
                {
                    c = c.with_session_token(token);
                }
                found = Some((
                    c,
                    "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned(),
                ));
            }
            (Some(_), None) => bail!(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or unset both to use ~/.aws/credentials"
            ),
            (None, Some(_)) => bail!(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or unset both to use ~/.aws/credentials"
            ),
            (None, None) => {}
        }
    }
    if found.is_none()
        && let Some(section) = creds_section
        && let Some(c) = static_credentials(section, &profile, &creds_file.path)?
    {
        found = Some((
            c,
            format!("profile `{profile}` in {}", creds_file.path.display()),
        ));
    }
    if found.is_none()
        && let Some(section) = config_section
        && let Some(c) = static_credentials(section, &profile, &config_file.path)?
    {
        found = Some((
            c,
            format!("profile `{profile}` in {}", config_file.path.display()),
        ));
    }

    if named_profile && creds_section.is_none() && config_section.is_none() && found.is_none() {
        let how = if explicit_profile.is_some() {
            "--profile"
        } else {
            "AWS_PROFILE"
        };
        bail!(
            "the profile `{profile}` ({how}) is not in {} nor in {} (as [profile {profile}]); \
             create it with `aws configure --profile {profile}`",
            creds_file.path.display(),
            config_file.path.display()
        );
    }
    let Some((credentials, credentials_source)) = found else {
        bail!(
            "no AWS credentials found. Do one of:\n  \
             - export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… (the root key `openkvs serve` \
             printed on its first start, or its OPENKVS_ACCESS_KEY_ID/OPENKVS_SECRET_ACCESS_KEY);\n  \
             - run `aws configure`, which writes them to {} (or `aws configure --profile NAME` and \
             pass --profile NAME);\n  \
             - add AWS_SESSION_TOKEN for temporary credentials from `openkvs credentials mint`.\n\
             Looked in: the environment{}, [{profile}] in {}, [profile {profile}] in {}.",
            creds_file.path.display(),
            if explicit_profile.is_some() {
                " (skipped: --profile given)"
            } else {
                ""
            },
            creds_file.path.display(),
            config_file.path.display(),
        );
    };

    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| {
            config_section
                .and_then(|s| s.get("region"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let ca_bundle = args
        .ca_bundle
        .clone()
        .or_else(|| env("AWS_CA_BUNDLE").map(|p| expand_tilde(&p, env)))
        .or_else(|| {
            config_section
                .and_then(|s| s.get("ca_bundle"))
                .map(|p| expand_tilde(p, env))
        });

    Ok(ClientConfig {
        endpoint,
        credentials,
        region,
        ca_bundle,
        credentials_source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn sec(name: &str, entries: &[(&str, &str)]) -> Section {
        Section {
            name: name.to_owned(),
            entries: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn ini_parses_aws_files() {
        let cases: Vec<(&str, &str, Vec<Section>)> = vec![
            ("empty", "", vec![]),
            (
                "credentials file",
                "[default]\naws_access_key_id = AKID\naws_secret_access_key = se/cr+et=\n",
                vec![sec(
                    "default",
                    &[
                        ("aws_access_key_id", "AKID"),
                        ("aws_secret_access_key", "se/cr+et="),
                    ],
                )],
            ),
            (
                "comments, blank lines, CRLF, BOM, colon delimiter, upper-case keys",
                "\u{feff}# top\r\n; also\r\n\r\n[profile dev]\r\nRegion: eu-west-1\r\n  \r\n",
                vec![sec("profile dev", &[("region", "eu-west-1")])],
            ),
            (
                "value keeps '=' and inline '#', key split at the first delimiter",
                "[a]\nk=v=w # not a comment\nurl = http://h:8080\n",
                vec![sec(
                    "a",
                    &[("k", "v=w # not a comment"), ("url", "http://h:8080")],
                )],
            ),
            (
                "nested settings continue the previous value",
                "[profile x]\ns3 =\n  addressing_style = path\n  max = 2\nregion = us-west-2\n",
                vec![sec(
                    "profile x",
                    &[
                        ("s3", "\naddressing_style = path\nmax = 2"),
                        ("region", "us-west-2"),
                    ],
                )],
            ),
            (
                "spaces inside the section header",
                "[ profile   spaced ]\nk = v\n[default]\n",
                vec![sec("profile   spaced", &[("k", "v")]), sec("default", &[])],
            ),
            (
                "empty value",
                "[d]\naws_session_token =\n",
                vec![sec("d", &[("aws_session_token", "")])],
            ),
        ];
        for (what, input, want) in cases {
            let got = Ini::parse(input).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.sections, want, "{what}");
        }
    }

    #[test]
    fn ini_errors_name_the_line() {
        let cases = [
            ("k = v\n", 1, "before any [section]"),
            ("[a]\njunk\n", 2, "neither"),
            ("[a]\n= v\n", 2, "no key"),
            ("[a\n", 1, "ends with"),
            ("[]\n", 1, "empty section"),
            ("[a]\n[b]\n[a]\n", 3, "twice"),
            ("[a]\nk = 1\nK = 2\n", 3, "twice"),
        ];
        for (input, line, needle) in cases {
            let e = Ini::parse(input).expect_err(input);
            assert_eq!(e.line, line, "{input:?}: {e}");
            assert!(e.message.contains(needle), "{input:?}: {e}");
        }
    }

    #[test]
    fn config_profile_sections() {
        let ini =
            Ini::parse("[default]\nregion = a\n[profile dev]\nregion = b\n[prod]\nregion = c\n")
                .unwrap();
        assert_eq!(
            ini.profile("default").and_then(|s| s.get("region")),
            Some("a")
        );
        assert_eq!(ini.profile("dev").and_then(|s| s.get("region")), Some("b"));
        // The config file needs the `profile ` prefix for non-default profiles.
        assert!(ini.profile("prod").is_none());
        let ini = Ini::parse("[default]\nregion = a\n[profile default]\nregion = z\n").unwrap();
        assert_eq!(
            ini.profile("default").and_then(|s| s.get("region")),
            Some("z")
        );
    }

    const CREDS: &str = "[default]\naws_access_key_id = FILE_DEFAULT\naws_secret_access_key = s1\n\
                         [dev]\naws_access_key_id = FILE_DEV\naws_secret_access_key = s2\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-central-1\n[profile dev]\nregion = ap-south-1\n\
                          [profile cfgonly]\naws_access_key_id = CFG\naws_secret_access_key = s3\n\
                          [profile sso]\nsso_session = corp\n";

    struct Case {
        what: &'static str,
        profile: Option<&'static str>,
        region: Option<&'static str>,
        env: &'static [(&'static str, &'static str)],
        files: &'static [(&'static str, &'static str)],
        /// Ok((akid, token, region)) or Err(substring of the message).
        want: Result<(&'static str, Option<&'static str>, &'static str), &'static str>,
    }

    fn run(c: &Case) -> anyhow::Result<ClientConfig> {
        let env: HashMap<&str, &str> = c.env.iter().copied().collect();
        let files: HashMap<PathBuf, &str> = c
            .files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), *t))
            .collect();
        let args = ClientArgs {
            endpoint_url: "http://127.0.0.1:8080".to_owned(),
            profile: c.profile.map(str::to_owned),
            region: c.region.map(str::to_owned),
            ca_bundle: None,
        };
        resolve_with(&args, &|k| env.get(k).map(|v| (*v).to_owned()), &|p| {
            Ok(files.get(p).map(|t| (*t).to_owned()))
        })
    }

    #[test]
    fn credential_and_region_precedence() {
        const HOME: (&str, &str) = ("HOME", "/home/u");
        const FILES: &[(&str, &str)] = &[
            ("/home/u/.aws/credentials", CREDS),
            ("/home/u/.aws/config", CONFIG),
        ];
        let cases = [
            Case {
                what: "environment wins over files",
                profile: None,
                region: None,
                env: &[
                    HOME,
                    ("AWS_ACCESS_KEY_ID", "ENV"),
                    ("AWS_SECRET_ACCESS_KEY", "x"),
                    ("AWS_SESSION_TOKEN", "t"),
                ],
                files: FILES,
                want: Ok(("ENV", Some("t"), "eu-central-1")),
            },
            Case {
                what: "--profile skips the environment keys (botocore)",
                profile: Some("dev"),
                region: None,
                env: &[
                    HOME,
                    ("AWS_ACCESS_KEY_ID", "ENV"),
                    ("AWS_SECRET_ACCESS_KEY", "x"),
                ],
                files: FILES,
                want: Ok(("FILE_DEV", Some("tok"), "ap-south-1")),
            },
            Case {
                what: "AWS_PROFILE does not skip the environment keys",
                profile: None,
                region: None,
                env: &[
                    HOME,
                    ("AWS_PROFILE", "dev"),
                    ("AWS_ACCESS_KEY_ID", "ENV"),
                    ("AWS_SECRET_ACCESS_KEY", "x"),
                ],
                files: FILES,
                want: Ok(("ENV", None, "ap-south-1")),
            },
            Case {
                what: "AWS_PROFILE picks the file profile",
                profile: None,
                region: None,
                env: &[HOME, ("AWS_PROFILE", "dev")],
                files: FILES,
                want: Ok(("FILE_DEV", Some("tok"), "ap-south-1")),
            },
            Case {
                what: "default profile from the credentials file",
                profile: None,
                region: None,
                env: &[HOME],
                files: FILES,
                want: Ok(("FILE_DEFAULT", None, "eu-central-1")),
            },
            Case {
                what: "keys in the config file",
                profile: Some("cfgonly"),
                region: None,
                env: &[HOME],
                files: FILES,
                want: Ok(("CFG", None, DEFAULT_REGION)),
            },
            Case {
                what: "region: --region > AWS_REGION > AWS_DEFAULT_REGION > config",
                profile: None,
                region: Some("cli-region"),
                env: &[HOME, ("AWS_REGION", "r1"), ("AWS_DEFAULT_REGION", "r2")],
                files: FILES,
                want: Ok(("FILE_DEFAULT", None, "cli-region")),
            },
            Case {
                what: "AWS_REGION over AWS_DEFAULT_REGION",
                profile: None,
                region: None,
                env: &[HOME, ("AWS_REGION", "r1"), ("AWS_DEFAULT_REGION", "r2")],
                files: FILES,
                want: Ok(("FILE_DEFAULT", None, "r1")),
            },
            Case {
                what: "AWS_DEFAULT_REGION over the config file",
                profile: None,
                region: None,
                env: &[HOME, ("AWS_DEFAULT_REGION", "r2")],
                files: FILES,
                want: Ok(("FILE_DEFAULT", None, "r2")),
            },
            Case {
                what: "file locations from AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, with ~",
                profile: None,
                region: None,
                env: &[
                    HOME,
                    ("AWS_SHARED_CREDENTIALS_FILE", "~/c.ini"),
                    ("AWS_CONFIG_FILE", "/etc/awsconf"),
                ],
                files: &[
                    (
                        "/home/u/c.ini",
                        "[default]\naws_access_key_id = MOVED\naws_secret_access_key = s\n",
                    ),
                    ("/etc/awsconf", "[default]\nregion = moved-1\n"),
                ],
                want: Ok(("MOVED", None, "moved-1")),
            },
            Case {
                what: "no credentials anywhere",
                profile: None,
                region: None,
                env: &[HOME],
                files: &[],
                want: Err("no AWS credentials found"),
            },
            Case {
                what: "half of the environment pair",
                profile: None,
                region: None,
                env: &[HOME, ("AWS_ACCESS_KEY_ID", "ENV")],
                files: FILES,
                want: Err("AWS_SECRET_ACCESS_KEY is not"),
            },
            Case {
                what: "unknown explicit profile",
                profile: Some("nope"),
                region: None,
                env: &[HOME],
                files: FILES,
                want: Err("aws configure --profile nope"),
            },
            Case {
                what: "SSO profile",
                profile: Some("sso"),
                region: None,
                env: &[HOME],
                files: FILES,
                want: Err("export-credentials --profile sso"),
            },
            Case {
                what: "no HOME and no files",
                profile: None,
                region: None,
                env: &[],
                files: &[],
                want: Err("no AWS credentials found"),
            },
        ];
        for c in &cases {
            match (run(c), &c.want) {
                (Ok(got), Ok((akid, token, region))) => {
                    assert_eq!(got.credentials.access_key_id, *akid, "{}", c.what);
                    assert_eq!(
                        got.credentials.session_token.as_deref(),
                        *token,
                        "{}",
                        c.what
                    );
                    assert_eq!(got.region, *region, "{}", c.what);
                }
                (Err(e), Err(needle)) => {
                    let msg = format!("{e:#}");
                    assert!(msg.contains(needle), "{}: {msg}", c.what);
                }
                (got, want) => panic!(
                    "{}: got {:?}, want {want:?}",
                    c.what,
                    got.map(|g| g.credentials)
                ),
            }
        }
    }

    #[test]
    fn bad_ini_file_is_reported_with_its_path() {
        let c = Case {
            what: "syntax error",
            profile: None,
            region: None,
            env: &[("HOME", "/h")],
            files: &[("/h/.aws/credentials", "[default]\nnonsense\n")],
            want: Err(""),
        };
        let msg = format!("{:#}", run(&c).unwrap_err());
        assert!(
            msg.contains("/h/.aws/credentials") && msg.contains("line 2"),
            "{msg}"
        );
    }
}
