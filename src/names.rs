//! Enums that users type by name (`--sampler pc`, `mask: equispaced`, `--window bone`): one
//! implementation of the name <-> value mapping, so the library's setting types stay plain enums
//! and the command line (which does know clap) lists and parses them from [`Named`].

/// A value users name: every variant, and the name each is typed as.
pub trait Named: Copy + 'static {
    /// What the names are of, for messages ("--sampler", "baseline").
    const WHAT: &'static str;
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
    /// The names, in declaration order.
    fn names() -> Vec<&'static str> {
        Self::all().iter().map(|v| v.name()).collect()
    }
}

/// Case and `_` / `-` do not matter (`score_sde` = `score-sde`, `Zero-Filled` = `zero_filled`).
fn normalised(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

/// The value named `s`, or an error listing the names.
pub fn parse<T: Named>(s: &str) -> anyhow::Result<T> {
    let key = normalised(s);
    T::all()
        .iter()
        .copied()
        .find(|v| normalised(v.name()) == key)
        .ok_or_else(|| {
            anyhow::anyhow!("{} {s}: expected one of {}", T::WHAT, T::names().join(", "))
        })
}

/// `impl Named`, `FromStr` and `Display` for an enum: `named!(Type, "what", {Variant => "name", ..})`.
macro_rules! named {
    ($t:ident, $what:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $crate::names::Named for $t {
            const WHAT: &'static str = $what;
            fn all() -> &'static [Self] {
                &[$($t::$v),+]
            }
            fn name(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }
        }
        impl $t {
            /// The name users type.
            pub fn name(self) -> &'static str {
                <Self as $crate::names::Named>::name(self)
            }
        }
        impl std::str::FromStr for $t {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> anyhow::Result<Self> {
                $crate::names::parse(s)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use named;

#[cfg(test)]
mod tests {

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Colour {
        DarkRed,
        Blue,
    }
    named!(Colour, "--colour", { DarkRed => "dark-red", Blue => "blue" });

    #[test]
    fn names_round_trip_and_errors_list_them() {
        assert_eq!("dark_red".parse::<Colour>().unwrap(), Colour::DarkRed);
        assert_eq!("BLUE".parse::<Colour>().unwrap(), Colour::Blue);
        assert_eq!(Colour::DarkRed.to_string(), "dark-red");
        let e = "green".parse::<Colour>().unwrap_err().to_string();
        assert_eq!(e, "--colour green: expected one of dark-red, blue");
    }
}
