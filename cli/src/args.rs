//! Value parsers shared by the subcommands' arguments.

use std::time::Duration;

use writelane_core::Policy;

use crate::exit::Failure;

/// Parse a duration written as a whole number and a unit: `250ms`, `30s`, `5m`, `2h`, or
/// several such parts in decreasing order such as `1m30s`. A bare number is refused, since
/// seconds and milliseconds are both plausible readings of it. Used as a clap value parser,
/// so the message names the rule broken.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a duration needs a number and a unit, such as 250ms, 30s or 5m".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    // The previous part's unit size, so `30s5m` (out of order) is refused as a likely typo.
    let mut last_unit_ms = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration: expected a whole number then a unit (ms, s, m, h), such as 250ms, 30s or 5m"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, after) = after.split_at(unit_len);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(format!(
                    "{text:?} has no unit: write {number}ms, {number}s or {number}m"
                ))
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?}; expected ms, s, m or h"
                ))
            }
        };
        if unit_ms >= last_unit_ms {
            return Err(format!(
                "{text:?}: write the parts largest unit first, each unit once, such as 1m30s"
            ));
        }
        last_unit_ms = unit_ms;
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|ms| total_ms.checked_add(ms));
        total_ms = part.ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parse an entity name: any non-empty text without control characters (a lease key).
pub fn parse_entity(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "an entity is a non-empty name, such as arn:aws:iam::123456789012:role/deploy".into(),
        );
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "entity {text:?} holds a control character: give the name as printed"
        ));
    }
    Ok(text.to_string())
}

/// A parse error of clap as one line prefixed with the program's name, like every other
/// writelane error: the error itself, the values it would take or its tip, and where the
/// help is (`writelane: unexpected argument '--x' found; try 'writelane lease --help'`).
/// `command` is the (sub)command the arguments named, as [`command_path`] finds it.
pub fn usage_line(error: &clap::Error, command: &str) -> String {
    let rendered = error.render().to_string();
    let mut text = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage: ") || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !text.is_empty() {
            // "...were not provided:" continues on the next line.
            text.push_str(if text.ends_with(':') { " " } else { "; " });
        }
        text.push_str(line);
    }
    format!("writelane: {text}; try '{command} --help'")
}

/// The (sub)command path `args` (without the program name) names in `command`, such as
/// `writelane lease show`: the help a usage error points to.
pub fn command_path(command: &clap::Command, args: &[String]) -> String {
    let mut path = vec![command.get_name().to_string()];
    let mut current = command;
    for arg in args {
        match current.find_subcommand(arg) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                current = sub;
            }
            None if arg == "--" => break,
            None => continue,
        }
    }
    path.join(" ")
}

/// `--policy`: JSON text (an object, or a preset name as a JSON string such as
/// `"iam"`), else a file holding it. Default: the `iam` preset. An invalid policy is a
/// usage error naming its field path (`--policy: lease.renew_ms ...`).
pub fn load_policy(arg: Option<&str>) -> Result<Policy, Failure> {
    let Some(arg) = arg else {
        return Policy::preset("iam").map_err(|e| Failure::software(e.to_string()));
    };
    let trimmed = arg.trim_start();
    let text = if trimmed.starts_with('{') || trimmed.starts_with('"') {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).map_err(|e| {
            Failure::usage(format!(
                "--policy {arg:?} is neither JSON nor a readable file: {e}"
            ))
        })?
    };
    Policy::from_json(&text).map_err(|e| Failure::usage(format!("--policy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        for bad in ["", "30", "5 m", "1d", "-1s", "s", "1.5s", "30s5m", "1s1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("30").unwrap_err().contains("30s"));
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn entities_are_non_empty_names() {
        assert_eq!(parse_entity("role/a").as_deref(), Ok("role/a"));
        assert!(parse_entity("").is_err());
        assert!(parse_entity("  ").is_err());
        assert!(parse_entity("a\nb").is_err());
    }
}
