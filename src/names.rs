//! Closed sets of names read from mapping files (ACLs, storage classes, delimiters, hash
//! algorithms...): each is an enum declared with [`named_enum!`], whose one list of
//! `Variant = "name"` pairs gives parsing, printing and the "should be one of ..." messages.

/// A name that is not one of a closed set's. Displays as the message mapping files get:
/// `should be one of a, b, c, not "x"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("should be one of {}, not {given:?}", .expected.join(", "))]
pub struct UnknownName {
    pub given: String,
    /// Every accepted name (aliases left out), in the order messages list them.
    pub expected: &'static [&'static str],
}

/// Declares a fieldless enum together with its names, from one list:
///
/// ```ignore
/// named_enum! {
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Delimiter in DELIMITERS {
///         Comma = ",",
///         Tab = "tab" | "\t", // "\t" is also accepted, never printed
///     }
/// }
/// ```
///
/// gives the enum, `DELIMITERS: &[(Delimiter, &str)]` (every value with its name),
/// `Delimiter::NAMES` (the names alone), `name()`, `parse()` (`None` for an unknown name),
/// `Display` (the name) and `FromStr` (failing with [`UnknownName`]).
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident in $TABLE:ident {
            $( $(#[$vmeta:meta])* $Variant:ident = $name:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $Enum {
            $( $(#[$vmeta])* $Variant ),+
        }

        #[doc = concat!("Every [`", stringify!($Enum), "`] with its name, in the order messages list them.")]
        $vis const $TABLE: &[($Enum, &str)] = &[ $( ($Enum::$Variant, $name) ),+ ];

        impl $Enum {
            /// Every name, in the order messages list them.
            pub const NAMES: &'static [&'static str] = &[ $( $name ),+ ];

            /// The name mapping files use (and the one sent on, where one is).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name ),+
                }
            }

            /// The value of a name (or accepted alias), if it is one.
            pub fn parse(s: &str) -> Option<$Enum> {
                match s {
                    $( $name $(| $alias)* => Some($Enum::$Variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $Enum {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $Enum {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<$Enum, $crate::names::UnknownName> {
                $Enum::parse(s).ok_or_else(|| $crate::names::UnknownName {
                    given: s.to_string(),
                    expected: $Enum::NAMES,
                })
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    named_enum! {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Shade in SHADES {
            Light = "light",
            Dark = "dark" | "DARK",
        }
    }

    #[test]
    fn one_list_gives_names_parsing_and_messages() {
        assert_eq!(SHADES, &[(Shade::Light, "light"), (Shade::Dark, "dark")]);
        assert_eq!(Shade::NAMES, &["light", "dark"]);
        for &(v, n) in SHADES {
            assert_eq!(v.name(), n);
            assert_eq!(v.to_string(), n);
            assert_eq!(n.parse::<Shade>(), Ok(v));
        }
        assert_eq!(Shade::parse("DARK"), Some(Shade::Dark));
        assert_eq!(Shade::parse("dim"), None);
        assert_eq!(
            "dim".parse::<Shade>().unwrap_err().to_string(),
            r#"should be one of light, dark, not "dim""#
        );
    }
}
