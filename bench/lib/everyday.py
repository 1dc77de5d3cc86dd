"""Everyday out-of-corpus questions (issue 11, goal 4) for the XQuAD articles: what a reader asks about a
document's subject that the document does not say ("How tall was Martin Luther?"). Written by hand from the
article titles; the article's paragraphs answer none of them. Tune articles 0-23 join the fitting data, report
articles 24-47 (written from the titles alone, before any report figure was seen) are held out; each is asked of
an index of its article alone (bench/lib/qa_data.py, article_sets) and should abstain.
"""

TUNE = {
    0: ["Who sang the national anthem at Super Bowl 49?", "How much did a ticket to Super Bowl 50 cost on average?"],
    1: ["What is the population of Warsaw's twin city Berlin?", "Which football club plays at Warsaw's airport?"],
    2: ["What did the Normans eat for breakfast?", "How tall was the average Norman knight?"],
    3: ["What was Nikola Tesla's favourite food?", "Which car company did Tesla found?"],
    4: ["Who won the Turing Award for complexity theory in 2020?", "How much does a complexity theory textbook cost?"],
    5: ["What is the average salary of a teacher in Norway?", "How many teachers went on strike in Chicago in 2019?"],
    6: ["What was Martin Luther's favourite beer?", "How tall was Martin Luther?"],
    7: ["What is the best surfing beach in Southern California?", "Which Southern California city has the most earthquakes per year?"],
    8: ["How much does a Sky subscription cost per month in 2023?", "Who is the current chief executive of Sky?"],
    9: ["What is the most popular pet in Victoria?", "How many koalas live in Victoria?"],
    10: ["What did the Huguenots eat at weddings?", "Which Huguenot invented the pressure cooker?"],
    11: ["How much did the first steam locomotive weigh in tonnes?", "Which museum displays Watt's original steam engine today?"],
    12: ["What is the price of a tank of medical oxygen?", "How much oxygen does a cat breathe per day?"],
    13: ["What was the price of a gallon of milk during the 1973 oil crisis?", "Which band wrote a song about the oil crisis?"],
    14: ["What did the Apollo astronauts eat for breakfast?", "How much did an Apollo spacesuit weigh?"],
    15: ["How many lawyers work at the European Court of Justice cafeteria?", "What is the salary of a European Commissioner?"],
    16: ["How many tourists visit the Amazon rainforest each year?", "What is the most dangerous snake in the Amazon?"],
    17: ["What do ctenophores taste like?", "Which aquarium has the largest ctenophore exhibit?"],
    18: ["Who is the mayor of Fresno today?", "What is Fresno's most famous restaurant?"],
    19: ["How many packets does Netflix send per second?", "Who won the Nobel Prize for packet switching?"],
    20: ["What did Black Death doctors charge for a visit?", "Which famous painter died of the Black Death?"],
    21: ["What is the salary of a geologist in Texas?", "Which geologist discovered the Grand Canyon?"],
    22: ["Which Newcastle pub is the oldest?", "What is the weather like in Newcastle in July?"],
    23: ["How much is a ticket to the V&A cafe?", "Who designed the V&A's gift shop logo?"],
}
REPORT = {
    24: ["Who hosts ABC's most popular cooking show?", "How much does a 30-second ad on ABC cost during the Oscars?"],
    25: ["What was Genghis Khan's favourite horse called?", "How tall was Genghis Khan?"],
    26: ["How much does a pharmacist earn in Canada?", "Which pharmacy chain has the most stores in Japan?"],
    27: ["Which vitamin supplement boosts the immune system the most?", "How many white blood cells does a newborn baby have?"],
    28: ["Which civil disobedience protest had the most arrests in 2020?", "What did Thoreau eat in jail?"],
    29: ["How much does it cost to build a house in Ohio?", "Which construction company built the Burj Khalifa?"],
    30: ["What is the most expensive private school in Switzerland?", "How many private schools are there in Brazil?"],
    31: ["What is Harvard's football team mascot?", "How much does a Harvard hoodie cost?"],
    32: ["Which Jacksonville restaurant serves the best shrimp?", "How many alligators live in Jacksonville?"],
    33: ["What is the Gini coefficient of Norway in 2021?", "Which billionaire pays the most tax?"],
    34: ["Who plays the Doctor's dog in Doctor Who?", "How much does a TARDIS replica cost?"],
    35: ["What is the University of Chicago's mascot?", "Which café on the Chicago campus is the oldest?"],
    36: ["What did Kublai Khan eat for breakfast?", "How tall was the Yuan dynasty's imperial palace gate?"],
    37: ["What is Kenya's most popular dish?", "How many lions live in Nairobi National Park?"],
    38: ["Who is the IPCC chair's favourite author?", "How much does the IPCC spend on flights?"],
    39: ["What colour are chloroplasts in red algae under a microscope at home?", "Which company sells chloroplast supplements?"],
    40: ["Who found the largest prime number in 2018?", "What is the favourite prime number of mathematicians?"],
    41: ["How many cruise ships sail on the Rhine each summer?", "What is the best wine village on the Rhine?"],
    42: ["What is the Scottish Parliament's cafeteria menu?", "How tall is the Scottish Parliament building?"],
    43: ["Which Islamist group has the largest social media following?", "What is the salary of an Islamist party leader?"],
    44: ["What did imperialist officers eat in India?", "Which video game is about imperialism?"],
    45: ["How many Methodist churches are in Texas?", "What is the United Methodist Church's favourite hymn?"],
    46: ["What did soldiers eat during the French and Indian War?", "Which film is about the French and Indian War?"],
    47: ["What is the strongest force a human can punch with?", "Which car produces the most downforce?"],
}
