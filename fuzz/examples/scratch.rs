use tumbler_pki::pem::parse_blocks;
use tumbler_pki::scan::parse_certificates;
use tumbler_pki::PrivateKey;
fn main() {
    let seed = std::fs::read("seeds/loader/node.crt").unwrap();
    let text = String::from_utf8(seed[1..].to_vec()).unwrap();
    let orig = parse_blocks(text.as_bytes()).unwrap()[0].der.clone();
    let show = |name: &str, t: &str| {
        let r = parse_certificates(t.as_bytes());
        let b = parse_blocks(t.as_bytes());
        println!("{name}: certs={:?} same_der={:?}", r.as_ref().map(|c| c.len()), b.map(|b| b[0].der == orig));
    };
    show("tab after BEGIN", &text.replacen("-----\n", "-----\t\n", 1));
    show("tab after END", &text.replace("CERTIFICATE-----\n-", "X").replace("-----END CERTIFICATE-----\n", "-----END CERTIFICATE-----\t\n"));
    show("tab after body line", &text.replacen("\n", "\n", 1).replacen("==\n", "==\t\n", 1));
    let lines: Vec<&str> = text.lines().collect();
    let mut hidden = String::new();
    for (i, l) in lines.iter().enumerate() {
        hidden.push_str(l);
        if i == lines.len() - 2 { hidden.push_str("\r-----END CERTIFICATE-----\rHIDDEN anything here: rm -rf /"); }
        hidden.push('\n');
    }
    println!("{hidden}");
    show("hidden after CR END", &hidden);
    show("crlf", &text.replace('\n', "\r\n"));
    show("space in body", &text.replacen("A", "A ", 1));
    show("cr in body", &text.replacen("A", "A\r", 1));
    let key = std::fs::read("seeds/loader/node.key").unwrap();
    let key = String::from_utf8(key[1..].to_vec()).unwrap();
    let kl: Vec<&str> = key.lines().collect();
    let mut hk = String::new();
    for (i, l) in kl.iter().enumerate() { hk.push_str(l); if i == kl.len()-2 { hk.push_str("\r-----END PRIVATE KEY-----\rjunk"); } hk.push('\n'); }
    println!("hidden key: {:?}", PrivateKey::from_pem(hk.as_bytes()).map(|_| "ok"));
    for cut in [0, 5, 11, 12, 20, 27, 28, 40] { println!("cut {cut}: {:?}", parse_certificates(&text.as_bytes()[..cut]).err()); }
    let n = text.len();
    for cut in [n-1, n-2, n-9, n-10, n-17, n-26, n-27] { println!("cut {cut}/{n}: {:?}", parse_certificates(&text.as_bytes()[..cut]).map(|c| c.len())); }
}
