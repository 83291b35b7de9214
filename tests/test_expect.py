"""The kind of answer a question asks for (qa.expect): pure, no backends."""

from __future__ import annotations

import pytest

from qa.expect import COUNT_FOR_SHARE, mismatch


@pytest.mark.parametrize(("question", "answer"), [
    ("How many votes did Luis Camacho receive?", "Luis Camacho received 13 percent of the vote."),
    ("How many votes did Luis Camacho receive in 2020?", "In 2020 he received 13% of the vote."),
    ("How much did the ventilators cost in total?", "They cost over twice their unit price."),
    ("How much did the ventilators cost?", "They cost 30 percent more than elsewhere."),
    ("How large was the IMF loan Bolivia took on under Áñez?", "The IMF loan was 25%."),
    ("How many tonnes of lithium does Bolivia hold?", "Bolivia has an enormous lithium deposit."),
    ("When did Evo Morales come back to Bolivia?", "He returned triumphantly to a massive welcome."),
    ("On what date did Áñez declare herself president?", "Áñez declared herself interim president."),
    ("And when were they sworn in?", "Arce and Choquehuanca were sworn in as president and vice-president."),
])
def test_answers_of_the_wrong_kind(question: str, answer: str) -> None:
    assert mismatch(question, answer)


@pytest.mark.parametrize(("question", "answer"), [
    ("What percentage of the island's ferries sailed on time?", "1,204 ferries sailed on time."),
    ("What share of the harbour's trade went to Lund?", "In 2019."),
    ("Roughly what proportion of the riders paid?", "About 48,000 riders paid."),
    ("And what per cent of the riders paid?", "1,204 riders."),
    ("How many percent of the riders paid?", "Lund counted 3.4 million riders."),
    ("What share of the riders paid?", "Forty thousand riders paid."),
    # the question's own numbers, and a year after "in", are no share
    ("What percentage of riders paid the 20 peso fare?", "1,204 riders paid the 20 peso fare."),
    ("What share of the vote did Lund win?", "Lund won 3,214,905 in 2019."),
    # a change asked for as a percentage, given as an amount
    ("By what percentage did bus fares rise?", "Fares rose by two hundred pesos."),
])
def test_a_count_where_a_share_was_asked_for(question: str, answer: str) -> None:
    assert mismatch(question, answer) == COUNT_FOR_SHARE


@pytest.mark.parametrize(("question", "answer"), [
    ("How many votes did the MAS get?", "The MAS got 3,393,978 votes, or 55.1 percent."),
    ("How many people were killed?", "Thirty-seven people were killed."),
    ("What share of the vote did Camacho get?", "Camacho got 13 percent."),
    ("How many percentage points did the MAS win by?", "By 26 points."),
    ("By how much did unemployment rise?", "Unemployment tripled."),
    ("How much money per year could the new taxes raise?", "About $400 million per year."),
    ("When did Evo Morales come back?", "On 9 November, the day after the swearing-in."),
    ("When was the election first scheduled?", "For 3 May."),
    ("Who won the election?", "Luis Arce won."),
    ("Why was the election postponed?", "Because of the pandemic."),
    # numbers in words, and amounts that are not digits
    ("How many people died?", "Fifteen people died."),
    ("How many people were hurt?", "None."),
    ("How many seats did the MAS win?", "A majority."),
    ("How much did it cost?", "It was free."),
    ("In how many provinces did Arce come out ahead?", "98 provinces."),
    # a count beside a percentage is still a count
    ("How many votes did Arce get?", "Over three million votes, 55 percent."),
    ("How many people died?", "Seven people died, a 20 percent rise."),
    # "how many" inside a question that asks something else
    ("Who decided how many troops to send?", "The president decided."),
    ("Why did nobody know how much it cost?", "Because the contract was secret."),
    # a change in a price asks for a change, not a sum
    ("How much did the price of fuel rise?", "It doubled."),
    ("How much did the budget deficit grow?", "It tripled."),
    # times that are not dates
    ("When did the protests start?", "In the spring."),
    ("When did they march?", "At dawn."),
    ("When did he resign?", "Recently."),
    ("When did the protests start?", "As soon as the results were announced."),
    ("When did he come back?", "Nineteen eighty-nine."),
    ("When and where did they meet?", "In La Paz."),
    # the size of a loan is a sum of money; the size of anything else need not be
    ("How big was the loan?", "It was 327 million dollars."),
    ("How large was the crowd?", "Massive."),
    ("How large was the MAS's majority?", "55 percent of the vote."),
    ("How much of the budget went to health?", "About 30 percent of the budget."),
    ("How large was the debt?", "80 percent of GDP."),
    ("How large was the interest rate on the loan?", "5 percent."),
    ("How big was the cut to the health budget?", "It was cut by 20%."),
    ("How big was the protest against the IMF loan?", "Tens of thousands marched."),
    # a share in words, as a fraction or a ratio, or a number that can be a percentage
    ("What percentage of the ferries sailed on time?", "Ninety percent."),
    ("What share of the vote did the ferry union win?", "Nearly two thirds."),
    ("What proportion of the riders paid?", "One in five."),
    ("What fraction of the tickets were sold?", "About one-eighth."),
    ("By what percentage did bus fares rise?", "They tripled."),
    ("By what percentage did bus fares rise?", "From 1,200 to 1,500 pesos."),
    ("What share of the vote did the ferry union win?", "1,204,000 votes out of 2,500,000 cast."),
    ("What proportion of the riders fell ill?", "1,204 per 100,000 riders."),
    ("What percentage of the riders paid?", "Forty-five."),
    ("How many percent of the riders paid?", "55.1"),
    ("What share of the riders paid?", "Most of them."),
    ("What share of the riders paid?", "A twelfth."),
    ("What share of the seats did the ferry union win?", "21 of the 36 seats."),
    ("What percentage of the riders paid in 2019?", "In 2019, 41–45."),
    ("What share of the harbour's trade went to Lund?", "The majority of it."),
])
def test_answers_of_the_right_kind(question: str, answer: str) -> None:
    assert mismatch(question, answer) == ""
