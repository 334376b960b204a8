//! What a driver program inherits, alone in its test binary: it sets a variable in its own
//! environment, which no other thread may read meanwhile.

mod support;

use support::{driver, options, read, tag};
use uaedge_driver::{DataType, Driver, Value};

#[tokio::test]
async fn the_program_gets_only_its_own_environment_and_no_new_privileges() {
    // A secret in uaedge's environment (a token, a password given to the service). Set
    // before any other thread of this binary runs a program or reads the environment.
    unsafe { std::env::set_var("UAEDGE_TEST_SECRET", "hunter2") };
    let mut o = options("normal");
    o.env.insert("S7_HOST".into(), "10.0.0.7".into());
    let mut d = driver(
        o,
        vec![
            tag("env", DataType::String, "env", false),
            tag("nnp", DataType::UInt8, "nnp", false),
            tag("fds", DataType::String, "fds", false),
        ],
    );
    d.connect().await.expect("connect");
    let r = read(&mut d).await.expect("read");
    let Some(Value::String(names)) = r[0].value.clone() else {
        panic!("{r:?}");
    };
    let mut names: Vec<&str> = names.split(',').filter(|n| *n != "LANG").collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "MODE",
            "PATH",
            "S7_HOST",
            "UAEDGE_DEVICE",
            "UAEDGE_PROTOCOL"
        ],
        "the program saw more than it was given"
    );
    assert_eq!(r[1].value, Some(Value::UInt8(1)), "NoNewPrivs is not set");
    // stdin, stdout, stderr, and the one Python opens to list them: nothing of ours.
    let Some(Value::String(fds)) = r[2].value.clone() else {
        panic!("{r:?}");
    };
    assert_eq!(fds, "0,1,2,3", "descriptors the program inherited");
    d.close().await;
}
