//! The synthetic problem against the check values of `../shared/bench/nsga/synth.py`, to the
//! last bit (`assert_eq!` on f64, values are Python's shortest round-trip reprs).

use gpulut_search::synthetic::{CHOICES, LAYERS, Synthetic};

fn genome(hex: &str) -> Vec<u8> {
    hex.chars().map(|c| c.to_digit(16).unwrap() as u8).collect()
}

#[test]
fn tables_and_bounds_match_synth_py() {
    let s = Synthetic::new();
    assert_eq!(
        s.latency_table()[0][..3],
        [1.625003404307323, 2.0813390270389105, 2.572605589374368]
    );
    assert_eq!(s.params_table()[19][11], 1.586060510903212);
    assert_eq!(s.gain_table()[7][5], 0.8447329425232939);
    assert_eq!(
        (s.lat_min, s.lat_max),
        (20.493879272792828, 75.65724545917953)
    );
    assert_eq!(
        (s.par_min, s.par_max),
        (4.226561545526836, 12.883013923647312)
    );
    assert_eq!(
        (s.gain_min, s.gain_max),
        (4.456598426597121, 14.18200400165664)
    );
    assert_eq!((s.acc_lo, s.acc_hi), (65.5402302612464, 75.54174798915248));
}

#[test]
fn objectives_match_synth_py() {
    let s = Synthetic::new();
    let l12: Vec<u8> = (0..LAYERS).map(|l| (l % CHOICES) as u8).collect();
    let cases: [(Vec<u8>, [f64; 3], [f64; 3]); 8] = [
        (
            vec![0; LAYERS],
            [68.91148112487436, 20.928244552923623, 4.335245267795107],
            [0.662926072287855, 0.007874161969433763, 0.9874447732719037],
        ),
        (
            vec![11; LAYERS],
            [74.87453424231381, 74.10891903943687, 12.825533751385983],
            [
                0.06671124973133029,
                0.9719319808274361,
                0.006640153465940867,
            ],
        ),
        (
            l12,
            [70.86605919449667, 38.94360041490869, 7.14704605416173],
            [0.4674979260007488, 0.3344560424354398, 0.6626233956976956],
        ),
        (
            genome("89095673b0346410001b"),
            [70.25688405243766, 39.79325278280981, 6.616908550761562],
            [0.5284061959885432, 0.3498585174227403, 0.7238652855901544],
        ),
        (
            genome("2792353b2a9a14757870"),
            [71.55532158792477, 42.318601516508494, 7.05778307775496],
            [0.39858214619815685, 0.395637970496108, 0.6729351230090345],
        ),
        (
            genome("b6a34a20481a426aaa30"),
            [71.40306489412991, 44.54412222145764, 8.59352011179515],
            [0.41380550508598146, 0.4359821492293189, 0.49552560615871066],
        ),
        (
            genome("98900645b26339131138"),
            [70.9980010305121, 38.031759253337064, 6.982637531173255],
            [0.4543057446133893, 0.31792621069002597, 0.6816159940286266],
        ),
        (
            genome("65299203196636b2903b"),
            [70.55518209436549, 37.587409925773365, 8.26516422742403],
            [0.49858091846136054, 0.30987105818061733, 0.533457529079127],
        ),
    ];
    for (g, raw, norm) in cases {
        let o = s.evaluate(&g).unwrap();
        assert_eq!([o.accuracy, o.latency, o.params], raw, "{g:?}");
        assert_eq!(s.normalise(&o), norm, "{g:?}");
        assert_eq!(s.latency(&g).unwrap(), raw[1]);
    }
}

#[test]
fn invalid_genomes_are_errors() {
    let s = Synthetic::new();
    assert!(s.evaluate(&[0; 19]).is_err());
    let mut g = vec![0u8; LAYERS];
    g[3] = 12;
    assert!(s.evaluate(&g).is_err());
    assert!(s.latency(&g).is_err());
}
