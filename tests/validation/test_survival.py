

def test_cox_ignores_a_column_constant_in_the_training_fold():
    from lifelines.datasets import load_rossi

    d = load_rossi()
    X = d.drop(columns=["week", "arrest"]).astype(float)
    y = survival_target(d["week"], d["arrest"])
    make = survival_estimator_class()
    plain = make(kind="cox", alpha=0.1).fit(X, y)
    padded = make(kind="cox", alpha=0.1).fit(X.assign(const=3.0), y)
    assert padded.coef_[-1] == 0.0
    np.testing.assert_allclose(padded.coef_[:-1], plain.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(padded.predict(X.assign(const=3.0)), plain.predict(X), rtol=0, atol=1e-12)
