//! SimCSE's `evaluation.py` output: a PrettyTable row of Spearman x 100 per task and their average.

use super::evaluate::TaskScore;

/// `columns`: task names in table order; tasks without a score show `n/a` and are left out of
/// the average (SimCSE would count them as 0.00).
pub fn simcse_table(title: &str, columns: &[&str], scores: &[TaskScore]) -> String {
    let mut headers: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let mut cells: Vec<String> = columns
        .iter()
        .map(|c| scores.iter().find(|s| s.task == *c).map_or("n/a".to_string(), |s| format!("{:.2}", s.reported())))
        .collect();
    let present: Vec<f64> = scores.iter().filter(|s| columns.contains(&s.task.as_str())).map(TaskScore::reported).collect();
    headers.push("Avg.".into());
    cells.push(if present.is_empty() { "n/a".into() } else { format!("{:.2}", present.iter().sum::<f64>() / present.len() as f64) });

    let widths: Vec<usize> = headers.iter().zip(&cells).map(|(h, c)| h.chars().count().max(c.chars().count()) + 2).collect();
    let rule: String = widths.iter().map(|w| format!("+{}", "-".repeat(*w))).collect::<String>() + "+";
    let row = |items: &[String]| -> String {
        items.iter().zip(&widths).map(|(item, w)| format!("|{:^w$}", item, w = *w)).collect::<String>() + "|"
    };
    format!("------ {title} ------\n{rule}\n{}\n{rule}\n{}\n{rule}", row(&headers), row(&cells))
}
