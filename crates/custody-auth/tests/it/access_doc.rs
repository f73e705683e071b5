//! `docs/ACCESS.md` carries the route/role matrix generated from the code; this test keeps it
//! current (`UPDATE_ACCESS=1 cargo test -p custody-auth --test it access_doc` rewrites it).

const BEGIN: &str = "<!-- matrix:begin (generated from custody_auth::matrix::ROUTES) -->\n";
const END: &str = "<!-- matrix:end -->";

#[test]
fn committed_access_matrix_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ACCESS.md");
    let doc = std::fs::read_to_string(path).expect("docs/ACCESS.md");
    let start = doc.find(BEGIN).expect("matrix:begin marker") + BEGIN.len();
    let end = doc.find(END).expect("matrix:end marker");
    let table = custody_auth::matrix::markdown_table();
    if doc[start..end] != table {
        if std::env::var_os("UPDATE_ACCESS").is_some() {
            let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(path, updated).expect("write docs/ACCESS.md");
        } else {
            panic!(
                "docs/ACCESS.md's matrix differs from the code; run `UPDATE_ACCESS=1 cargo test -p custody-auth --test it access_doc` and commit it"
            );
        }
    }
}
