//! Row structs read by column name.

/// Declares a row struct and its `sqlx::FromRow`, each field read from the column of its
/// name, as `#[derive(sqlx::FromRow)]` would. sqlx's derive lives in its proc-macro crate,
/// which compiles sqlx's SQLite and PostgreSQL drivers a second time for the build host;
/// this keeps that out of every build.
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty ),*
        }

        impl<'r, R: ::sqlx::Row> ::sqlx::FromRow<'r, R> for $name
        where
            &'r str: ::sqlx::ColumnIndex<R>,
            $( $ty: ::sqlx::Decode<'r, R::Database> + ::sqlx::Type<R::Database>, )*
        {
            fn from_row(row: &'r R) -> Result<Self, ::sqlx::Error> {
                Ok(Self { $( $field: row.try_get(stringify!($field))?, )* })
            }
        }
    };
}

pub(crate) use row;
