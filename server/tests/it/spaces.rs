//! The spaces endpoints, checked against params and MACs computed here, independently, from
//! per-layer formulas of the MoGA/MobileNetV3 layout (not by calling the code under test).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, expect_problem, spawn_app};

/// (cin, cout, stride, relu?) of the 14 searchable layers, and the input side of each.
const LAYERS: [(u64, u64, u64); 14] = [
    (16, 24, 2),
    (24, 24, 1),
    (24, 40, 2),
    (40, 40, 1),
    (40, 40, 1),
    (40, 80, 2),
    (80, 80, 1),
    (80, 80, 1),
    (80, 80, 1),
    (80, 112, 1),
    (112, 112, 1),
    (112, 160, 2),
    (160, 160, 1),
    (160, 160, 1),
];

/// Published (expansion, kernel, se) per layer, as in the official MoGA models.
const MOGA_A: [(u64, u64, u64); 14] = [
    (6, 5, 0),
    (6, 7, 0),
    (6, 3, 0),
    (6, 3, 1),
    (3, 3, 1),
    (6, 3, 1),
    (6, 3, 0),
    (6, 7, 0),
    (3, 7, 1),
    (6, 7, 0),
    (6, 3, 0),
    (6, 3, 0),
    (6, 5, 1),
    (6, 5, 1),
];
const MOGA_B: [(u64, u64, u64); 14] = [
    (3, 3, 0),
    (3, 3, 0),
    (6, 7, 0),
    (3, 3, 0),
    (6, 5, 0),
    (6, 3, 1),
    (6, 5, 1),
    (3, 3, 0),
    (6, 7, 1),
    (6, 7, 0),
    (3, 5, 0),
    (6, 7, 1),
    (6, 7, 1),
    (6, 3, 1),
];
const MOGA_C: [(u64, u64, u64); 14] = [
    (3, 5, 0),
    (3, 3, 0),
    (3, 5, 0),
    (3, 3, 0),
    (3, 5, 0),
    (3, 5, 0),
    (6, 5, 1),
    (3, 5, 0),
    (3, 5, 0),
    (6, 3, 0),
    (6, 3, 1),
    (6, 3, 1),
    (6, 3, 1),
    (6, 3, 1),
];
/// MobileNetV3-Large: (hidden, kernel, squeeze or 0).
const MBV3: [(u64, u64, u64); 14] = [
    (64, 3, 0),
    (72, 3, 0),
    (72, 5, 24),
    (120, 5, 32),
    (120, 5, 32),
    (240, 3, 0),
    (200, 3, 0),
    (184, 3, 0),
    (184, 3, 0),
    (480, 3, 120),
    (672, 3, 168),
    (672, 5, 168),
    (960, 5, 240),
    (960, 5, 240),
];

/// Input side of each searchable layer: 224 -> stem /2 -> 112, then the layers' strides.
fn sides() -> [(u64, u64); 14] {
    let mut side: u64 = 112;
    let mut out = [(0, 0); 14];
    for (i, &(_, _, s)) in LAYERS.iter().enumerate() {
        let o = side.div_ceil(s);
        out[i] = (side, o);
        side = o;
    }
    out
}

/// (params, macs) of one inverted-residual layer.
fn layer(i: usize, hidden: u64, k: u64, squeeze: u64) -> (u64, u64) {
    let (cin, cout, _) = LAYERS[i];
    let (hin, hout) = sides()[i];
    let expand = if hidden == cin { 0 } else { cin * hidden };
    let dw = k * k * hidden;
    let proj = hidden * cout;
    let se_w = 2 * hidden * squeeze;
    let se_b = if squeeze > 0 { squeeze + hidden } else { 0 };
    (
        expand + dw + proj + se_w + se_b,
        expand * hin * hin + (dw + proj) * hout * hout + se_w,
    )
}

/// Stem conv 3x3/2 3->16 + dwsep 16->16 at 112, head 160->960 at 7, pool, 960->1280, fc 1280->1000.
fn fixed() -> (u64, u64) {
    let stem = 3 * 3 * 3 * 16;
    let dwsep = 9 * 16 + 16 * 16;
    let head = 160 * 960;
    let params = stem + dwsep + head + 960 * 1280 + 1280 * 1000 + 1000;
    let macs = stem * 112 * 112 + dwsep * 112 * 112 + head * 49 + 960 * 1280 + 1280 * 1000;
    (params, macs)
}

fn grid(arch: &[(u64, u64, u64); 14]) -> (u64, u64) {
    let (mut p, mut m) = fixed();
    for (i, &(e, k, se)) in arch.iter().enumerate() {
        let hidden = LAYERS[i].0 * e;
        let (lp, lm) = layer(i, hidden, k, if se == 1 { hidden / 4 } else { 0 });
        p += lp;
        m += lm;
    }
    (p, m)
}

fn mbv3() -> (u64, u64) {
    let (mut p, mut m) = fixed();
    for (i, &(hidden, k, sq)) in MBV3.iter().enumerate() {
        let (lp, lm) = layer(i, hidden, k, sq);
        p += lp;
        m += lm;
    }
    (p, m)
}

fn hex_of(arch: &[(u64, u64, u64); 14]) -> String {
    arch.iter()
        .map(|&(e, k, se)| {
            let c = [3, 5, 7].iter().position(|&x| x == k).unwrap() as u64
                + 3 * u64::from(e == 6)
                + 6 * se;
            char::from_digit(c as u32, 16).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn analyze_matches_independent_formulas_for_the_references() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/spaces/moga-mbv3/analyze",
            Some(ADMIN_TOKEN),
            &json!({"archs": ["MoGA-A", "MoGA-B", "MoGA-C", "MobileNetV3-Large"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let expected = [grid(&MOGA_A), grid(&MOGA_B), grid(&MOGA_C), mbv3()];
    let hexes = [hex_of(&MOGA_A), hex_of(&MOGA_B), hex_of(&MOGA_C)];
    assert_eq!(
        hexes,
        ["453969358533aa", "005049a0b51bb9", "101011a1139999"]
    );
    for (i, (params, macs)) in expected.iter().enumerate() {
        assert_eq!(v[i]["params"], *params, "params of #{i}");
        assert_eq!(v[i]["macs"], *macs, "macs of #{i}");
        assert_eq!(
            v[i]["blocks"].as_array().unwrap().len(),
            20,
            "2 stem + 14 + 4 head"
        );
        let block_sum: u64 = v[i]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["macs"].as_u64().unwrap())
            .sum();
        assert_eq!(block_sum, *macs);
    }
    for (i, hex) in hexes.iter().enumerate() {
        assert_eq!(v[i]["arch"], hex.as_str());
    }
    assert_eq!(v[3]["arch"], "MobileNetV3-Large");
    // The MoGA paper's MACs: 304M, 248M, 221M (its params are rounded too coarsely to compare).
    for (i, paper) in [304e6, 248e6, 221e6].iter().enumerate() {
        let ours = v[i]["macs"].as_f64().unwrap();
        assert!(
            (ours - paper).abs() / paper < 0.005,
            "#{i}: {ours} vs {paper}"
        );
    }
}

#[tokio::test]
async fn analyze_accepts_every_form_and_any_architecture() {
    let app = spawn_app().await;
    // A fixed pseudo-random sweep of the grid, in all three forms.
    let mut archs = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..25 {
        let arch: Vec<(u64, u64, u64)> = (0..14)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let c = seed % 12;
                (
                    [3, 6][((c / 3) % 2) as usize],
                    [3, 5, 7][(c % 3) as usize],
                    c / 6,
                )
            })
            .collect();
        archs.push(<[(u64, u64, u64); 14]>::try_from(arch).unwrap());
    }
    let mut body = Vec::new();
    for (i, a) in archs.iter().enumerate() {
        let hex = hex_of(a);
        body.push(match i % 3 {
            0 => json!(hex),
            1 => json!(hex.to_uppercase()),
            _ => json!({"space": "moga-mbv3", "choices": hex.chars().map(|c| c.to_digit(16).unwrap()).collect::<Vec<_>>()}),
        });
    }
    let r = app
        .post_json(
            "/v1/spaces/moga-mbv3/analyze",
            Some(ADMIN_TOKEN),
            &json!({"archs": body}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    for (i, a) in archs.iter().enumerate() {
        let (params, macs) = grid(a);
        assert_eq!(v[i]["arch"], hex_of(a));
        assert_eq!(
            (
                v[i]["params"].as_u64().unwrap(),
                v[i]["macs"].as_u64().unwrap()
            ),
            (params, macs),
            "#{i}"
        );
    }
}

#[tokio::test]
async fn blocks_lists_120_choice_blocks_plus_fixed_parts() {
    let app = spawn_app().await;
    let r = app
        .get("/v1/spaces/moga-mbv3/blocks", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(v["count"], blocks.len());
    let part = |p: &str| blocks.iter().filter(|b| b["part"] == p).count();
    assert_eq!((part("stem"), part("choice"), part("head")), (2, 120, 4));

    let mut keys: Vec<&str> = blocks.iter().map(|b| b["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 126, "keys are distinct");
    assert!(keys.contains(&"conv-i224x224x3-o112x112x16-k3-s2-hswish"));
    assert!(keys.contains(&"mbconv-i56x56x24-o28x28x40-e6-k5-s2-se1-relu"));

    let mut uses = 0;
    for b in blocks.iter().filter(|b| b["part"] == "choice") {
        for u in b["uses"].as_array().unwrap() {
            uses += 1;
            let l = u["layer"].as_u64().unwrap() as usize - 1;
            let c = u["choice"].as_u64().unwrap();
            let (e, k, se) = (
                [3, 6][((c / 3) % 2) as usize],
                [3u64, 5, 7][(c % 3) as usize],
                c / 6,
            );
            let hidden = LAYERS[l].0 * e;
            let (params, macs) = layer(l, hidden, k, if se == 1 { hidden / 4 } else { 0 });
            assert_eq!(b["params"], params, "{}", b["key"]);
            assert_eq!(b["macs"], macs, "{}", b["key"]);
            let (hin, hout) = sides()[l];
            assert_eq!(b["input"], json!({"h": hin, "w": hin, "c": LAYERS[l].0}));
            assert_eq!(b["output"], json!({"h": hout, "w": hout, "c": LAYERS[l].1}));
        }
    }
    assert_eq!(uses, 14 * 12);

    let r = app
        .get("/v1/spaces/moga-mbv3/blocks?part=head", Some(ADMIN_TOKEN))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["count"], 4);
    assert_eq!(v["blocks"][3]["key"], "fc-i1280-o1000");
}

#[tokio::test]
async fn list_and_get_describe_the_space() {
    let app = spawn_app().await;
    let v: Value = app
        .get("/v1/spaces", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["name"], "moga-mbv3");
    assert_eq!(v[0]["layers"], 14);
    assert_eq!(v[0]["choices"], 12);
    assert_eq!(v[0]["size"], 12u128.pow(14).to_string());
    assert_eq!(v[0]["distinct_blocks"], 126);
    assert_eq!(
        v[0]["references"],
        json!(["MoGA-A", "MoGA-B", "MoGA-C", "MobileNetV3-Large"])
    );
    let v: Value = app
        .get("/v1/spaces/moga-mbv3", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["spec"]["layers"].as_array().unwrap().len(), 14);
    let a = v["reference_archs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "MoGA-A")
        .unwrap();
    assert_eq!(a["arch"], "453969358533aa");
    assert_eq!(a["macs"], grid(&MOGA_A).1);
}

#[tokio::test]
async fn unknown_spaces_and_bad_queries_are_refused() {
    let app = spawn_app().await;
    for path in ["/v1/spaces/nope", "/v1/spaces/nope/blocks"] {
        let p = expect_problem(
            app.get(path, Some(ADMIN_TOKEN)).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(p["code"], "unknown_space");
        assert!(p["detail"].as_str().unwrap().contains("nope"));
    }
    let p = expect_problem(
        app.post_json(
            "/v1/spaces/nope/analyze",
            Some(ADMIN_TOKEN),
            &json!({"archs": ["MoGA-A"]}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["code"], "unknown_space");
    let p = expect_problem(
        app.get("/v1/spaces/moga-mbv3/blocks?part=tail", Some(ADMIN_TOKEN))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("tail"));
}
