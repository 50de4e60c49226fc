//! The loader needs no more than `resi_loader`: a whole pass over the sample uploads (loads,
//! rejections, strikes and a ban) as a member of that role ends in exactly the database a
//! superuser's pass gives, and `resi-loader status` works as that role too.

mod common;

use common::*;

#[test]
fn a_pass_as_resi_loader_equals_a_superusers_pass() {
    let basic = fixture("samples/basic");
    let reference = TestDatabase::new("roles_reference");
    let expected_pass = RT.block_on(load(&reference.url, local(&basic)));

    let db = TestDatabase::new("roles_pass");
    db.setup_roles();
    let login = db.login(Some("resi_loader"));
    let pass = RT.block_on(load(&login.url, local(&basic)));
    assert_eq!(
        (pass.loaded, pass.rejected, pass.deferred, pass.rows_attested),
        (expected_pass.loaded, expected_pass.rejected, expected_pass.deferred, expected_pass.rows_attested)
    );
    assert!(pass.loaded > 10 && pass.deferred > 0, "{pass:?}");
    assert_eq!(database_state(&db.url), database_state(&reference.url));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resi-loader"))
        .args(["status", "--database-url", &login.url])
        .env("RESI_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&format!("{} loaded", pass.loaded)), "{report}");
    assert!(report.contains("per miner (by trust):") && report.contains(" banned\n"), "{report}");
    assert!(report.contains("consensus confidence: high "), "{report}");
}
