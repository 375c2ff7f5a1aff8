//! The default holder text: who holds a lease, in words, for the person looking at a
//! stuck one: user, host, the CI run, and the command.

use writelane::MAX_HOLDER_LEN;

/// CI systems' run identifiers, in the order they are looked for: the variable, and the
/// name the holder text gives it.
const CI_RUN_VARS: &[(&str, &str)] = &[
    ("GITHUB_RUN_ID", "github run"),
    ("CI_JOB_ID", "gitlab job"),
    ("BUILDKITE_BUILD_ID", "buildkite build"),
    ("CODEBUILD_BUILD_ID", "codebuild build"),
    ("CIRCLE_WORKFLOW_ID", "circleci workflow"),
    ("BUILD_TAG", "jenkins build"),
    ("BUILD_BUILDID", "azure build"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket build"),
    ("TRAVIS_JOB_ID", "travis job"),
];

/// `USER@HOST, CI RUN, $ COMMAND`, cut to the longest holder a record keeps. `env` looks a
/// variable up (the process environment in use, a map in tests).
pub fn default_holder(command: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    let user = env("USER")
        .or_else(|| env("LOGNAME"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {}", current_uid()));
    let mut text = format!("{user}@{}", host_name());
    for (var, name) in CI_RUN_VARS {
        if let Some(id) = env(var).filter(|v| !v.is_empty()) {
            text.push_str(&format!(", {name} {id}"));
            // GitHub run ids repeat across repositories: name the repository too.
            if *var == "GITHUB_RUN_ID" {
                if let Some(repo) = env("GITHUB_REPOSITORY").filter(|v| !v.is_empty()) {
                    text.push_str(&format!(" of {repo}"));
                }
            }
            if *var == "CI_JOB_ID" {
                if let Some(repo) = env("CI_PROJECT_PATH").filter(|v| !v.is_empty()) {
                    text.push_str(&format!(" of {repo}"));
                }
            }
            break;
        }
    }
    text.push_str(", $ ");
    text.push_str(&command.join(" "));
    cut(text, MAX_HOLDER_LEN)
}

/// `text` cut to at most `max` bytes on a character boundary, ending in `...` when cut.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("...");
    text
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The host's name, or `host` when it cannot be read.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match rc {
        0 if len > 0 => String::from_utf8_lossy(&buf[..len]).into_owned(),
        _ => "host".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn names_user_host_ci_run_and_command() {
        let cmd = vec!["terraform".to_string(), "apply".to_string()];
        let text = default_holder(
            &cmd,
            env_of(&[
                ("USER", "ci"),
                ("GITHUB_RUN_ID", "123"),
                ("GITHUB_REPOSITORY", "acme/infra"),
                ("CI_JOB_ID", "9"),
            ]),
        );
        assert!(text.starts_with("ci@"), "{text}");
        assert!(
            text.ends_with(", github run 123 of acme/infra, $ terraform apply"),
            "{text}"
        );
        let gitlab = default_holder(&cmd, env_of(&[("LOGNAME", "me"), ("CI_JOB_ID", "9")]));
        assert!(gitlab.contains(", gitlab job 9, $ terraform"), "{gitlab}");
        let plain = default_holder(&cmd, env_of(&[]));
        assert!(plain.starts_with("uid "), "{plain}");
    }

    #[test]
    fn a_long_command_is_cut_to_fit_a_record() {
        let cmd = vec!["é".repeat(2000)];
        let text = default_holder(&cmd, env_of(&[("USER", "u")]));
        assert!(text.len() <= MAX_HOLDER_LEN);
        assert!(text.ends_with("..."));
    }
}
