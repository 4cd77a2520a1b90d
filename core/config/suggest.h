#pragma once
// "Did you mean" support: edit distances between a misspelt word and the words it could be.
#include <optional>
#include <string>
#include <vector>

namespace attnlab::config {

// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
// adjacent characters each cost 1 (so "lrr"->"lr" and "wieght"->"weight" are both 1).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to `word`, when it is near enough to be a plausible typo: at most
// max(1, |word| / 3) edits, capped at 3. Ties go to the earlier candidate.
std::optional<std::string> closest_word(const std::string& word, const std::vector<std::string>& candidates);

std::string join_words(const std::vector<std::string>& words, const std::string& sep);

}  // namespace attnlab::config
