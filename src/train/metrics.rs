//! Classification metrics: accuracy, per-class recall, the confusion matrix and, for two
//! classes, the ROC AUC of the positive class's probability.

/// Metrics of predictions (probabilities [N, classes]) against labels.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub accuracy: f64,
    pub recall: Vec<f64>,
    /// confusion[true][predicted].
    pub confusion: Vec<Vec<usize>>,
    /// Two classes only: the probability of class 1 ranked against the labels.
    pub roc_auc: Option<f64>,
}

pub fn metrics(probabilities: &[f32], labels: &[usize], classes: usize) -> Metrics {
    let mut confusion = vec![vec![0; classes]; classes];
    for (row, &label) in probabilities.chunks(classes).zip(labels) {
        let predicted = row
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
                if p > best.1 { (i, p) } else { best }
            })
            .0;
        confusion[label][predicted] += 1;
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let recall = (0..classes)
        .map(|c| {
            let total: usize = confusion[c].iter().sum();
            if total == 0 {
                f64::NAN
            } else {
                confusion[c][c] as f64 / total as f64
            }
        })
        .collect();
    let roc_auc = (classes == 2).then(|| {
        let scores: Vec<(f32, bool)> = probabilities
            .chunks(2)
            .zip(labels)
            .map(|(row, &l)| (row[1], l == 1))
            .collect();
        roc_auc(&scores)
    });
    Metrics {
        accuracy: correct as f64 / labels.len().max(1) as f64,
        recall,
        confusion,
        roc_auc,
    }
}

/// The probability that a random positive scores above a random negative (ties count half).
fn roc_auc(scores: &[(f32, bool)]) -> f64 {
    let positives: Vec<f32> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    let negatives: Vec<f32> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    if positives.is_empty() || negatives.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0.0;
    for &p in &positives {
        for &n in &negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::metrics;

    #[test]
    fn metrics_of_a_small_case() {
        let probabilities = [0.9, 0.1, 0.4, 0.6, 0.3, 0.7, 0.8, 0.2];
        let m = metrics(&probabilities, &[0, 1, 0, 1], 2);
        assert_eq!(m.confusion, vec![vec![1, 1], vec![1, 1]]);
        assert_eq!(m.accuracy, 0.5);
        // positives score 0.6 and 0.2, negatives 0.1 and 0.7: 2 of 4 pairs ordered.
        assert_eq!(m.roc_auc, Some(0.5));
    }
}
