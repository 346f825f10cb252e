"""Hand-written multilingual vocabulary of the demo TwHIN: topics, templates, hashtags, emoji.

Every phrase is a row with one rendering per language, in the order of :data:`LANGS`, so the
same row renders the same content in any two languages (the translation pairs). Topics come
in groups of three neighbours that share a few phrases and a group hashtag: tweet text alone
therefore tells neighbouring topics apart only partly, while who engages with a tweet does.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Languages, most frequent first; every phrase row has one entry per language in this order.
LANGS: tuple[str, ...] = ("en", "ja", "es", "pt", "ar", "fr", "de")
#: Share of users (and so, roughly, of tweets) writing in each language: skewed, English first.
LANG_SHARES: tuple[float, ...] = (0.40, 0.15, 0.14, 0.10, 0.08, 0.07, 0.06)

Row = tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Topic:
    """One planted community: a name, its group, hashtags, emoji and phrase rows.

    Attributes:
        name: Short English name (for reports only).
        group: Name of its group of neighbouring topics (see :data:`GROUPS`).
        hashtags: Frequent hashtags used in every language (without '#'), most frequent first.
        emoji: Emoji that go with the topic.
        label: The topic's name in each language (also used as a localised hashtag).
        phrases: Topic-specific noun phrases, one row per phrase.
    """

    name: str
    group: str
    hashtags: tuple[str, ...]
    emoji: tuple[str, ...]
    label: Row
    phrases: tuple[Row, ...]


@dataclass(frozen=True)
class Group:
    """Neighbouring topics share these phrases and this hashtag."""

    name: str
    hashtag: str
    phrases: tuple[Row, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "sports",
        "sports",
        (
            ("last night's game", "昨夜の試合", "el partido de anoche", "o jogo de ontem à noite", "مباراة الليلة الماضية", "le match d'hier soir", "das Spiel gestern Abend"),
            ("the new coach", "新しい監督", "el nuevo entrenador", "o novo treinador", "المدرب الجديد", "le nouvel entraîneur", "der neue Trainer"),
            ("that referee decision", "あの審判の判定", "esa decisión del árbitro", "aquela decisão do árbitro", "قرار الحكم ذاك", "cette décision de l'arbitre", "diese Schiedsrichterentscheidung"),
        ),
    ),
    Group(
        "tech",
        "tech",
        (
            ("the new update", "新しいアップデート", "la nueva actualización", "a nova atualização", "التحديث الجديد", "la nouvelle mise à jour", "das neue Update"),
            ("that tech conference", "あのテックカンファレンス", "esa conferencia de tecnología", "aquela conferência de tecnologia", "مؤتمر التقنية ذاك", "cette conférence tech", "die Tech-Konferenz"),
            ("the startup everyone is talking about", "みんなが話題にしてるスタートアップ", "la startup de la que todos hablan", "a startup de que todo mundo fala", "الشركة الناشئة التي يتحدث عنها الجميع", "la startup dont tout le monde parle", "das Startup, über das alle reden"),
        ),
    ),
    Group(
        "screen",
        "entertainment",
        (
            ("the trailer", "予告編", "el tráiler", "o trailer", "الإعلان التشويقي", "la bande-annonce", "der Trailer"),
            ("that plot twist", "あのどんでん返し", "ese giro de guion", "aquela reviravolta", "تلك المفاجأة في القصة", "ce retournement de situation", "die Wendung in der Handlung"),
            ("the ending", "あの結末", "el final", "o final", "النهاية", "la fin", "das Ende"),
        ),
    ),
    Group(
        "music",
        "music",
        (
            ("the new album", "新しいアルバム", "el nuevo álbum", "o novo álbum", "الألبوم الجديد", "le nouvel album", "das neue Album"),
            ("the world tour", "ワールドツアー", "la gira mundial", "a turnê mundial", "الجولة العالمية", "la tournée mondiale", "die Welttournee"),
            ("that music video", "あのMV", "ese videoclip", "aquele clipe", "الفيديو كليب ذاك", "ce clip", "das Musikvideo"),
        ),
    ),
    Group(
        "games",
        "gamers",
        (
            ("the patch notes", "パッチノート", "las notas del parche", "as notas do patch", "ملاحظات التحديث", "les notes de patch", "die Patchnotes"),
            ("that speedrun", "あのRTA", "ese speedrun", "aquele speedrun", "السبيدرن ذاك", "ce speedrun", "der Speedrun"),
            ("the livestream", "あの配信", "el directo", "a live", "البث المباشر", "le live", "der Livestream"),
        ),
    ),
    Group(
        "food",
        "food",
        (
            ("dinner tonight", "今夜の夕食", "la cena de esta noche", "o jantar de hoje", "عشاء الليلة", "le dîner de ce soir", "das Abendessen heute"),
            ("that new recipe", "あの新しいレシピ", "esa receta nueva", "aquela receita nova", "الوصفة الجديدة تلك", "cette nouvelle recette", "das neue Rezept"),
            ("brunch", "ブランチ", "el brunch", "o brunch", "الفطور المتأخر", "le brunch", "der Brunch"),
        ),
    ),
    Group(
        "news",
        "news",
        (
            ("the press conference", "記者会見", "la rueda de prensa", "a coletiva de imprensa", "المؤتمر الصحفي", "la conférence de presse", "die Pressekonferenz"),
            ("the new poll", "最新の世論調査", "la nueva encuesta", "a nova pesquisa", "استطلاع الرأي الجديد", "le nouveau sondage", "die neue Umfrage"),
            ("the government plan", "政府の計画", "el plan del gobierno", "o plano do governo", "خطة الحكومة", "le plan du gouvernement", "der Plan der Regierung"),
        ),
    ),
    Group(
        "science",
        "science",
        (
            ("the new study", "新しい研究", "el nuevo estudio", "o novo estudo", "الدراسة الجديدة", "la nouvelle étude", "die neue Studie"),
            ("that documentary", "あのドキュメンタリー", "ese documental", "aquele documentário", "الفيلم الوثائقي ذاك", "ce documentaire", "die Doku"),
            ("the research paper", "研究論文", "el artículo científico", "o artigo científico", "الورقة البحثية", "l'article scientifique", "das Paper"),
        ),
    ),
)

TOPICS: tuple[Topic, ...] = (
    # --- sports
    Topic(
        "football", "sports", ("football", "ChampionsLeague", "PremierLeague"), ("⚽", "🥅"),
        ("football", "サッカー", "fútbol", "futebol", "كرة القدم", "foot", "Fußball"),
        (
            ("the derby", "ダービーマッチ", "el derbi", "o clássico", "الديربي", "le derby", "das Derby"),
            ("that last-minute goal", "ラストミニッツのゴール", "ese gol en el último minuto", "aquele gol no último minuto", "هدف الدقيقة الأخيرة", "ce but à la dernière minute", "das Tor in letzter Minute"),
            ("the transfer window", "移籍市場", "el mercado de fichajes", "a janela de transferências", "سوق الانتقالات", "le mercato", "der Transfermarkt"),
            ("the Champions League final", "チャンピオンズリーグ決勝", "la final de la Champions", "a final da Champions", "نهائي دوري الأبطال", "la finale de la Ligue des champions", "das Champions-League-Finale"),
        ),
    ),
    Topic(
        "basketball", "sports", ("NBA", "basketball", "NBAPlayoffs"), ("🏀", "⛹️"),
        ("basketball", "バスケ", "baloncesto", "basquete", "كرة السلة", "basket", "Basketball"),
        (
            ("the playoff game", "プレーオフの試合", "el partido de playoffs", "o jogo dos playoffs", "مباراة البلاي أوف", "le match de playoffs", "das Playoff-Spiel"),
            ("that buzzer beater", "あのブザービーター", "ese triple sobre la bocina", "aquela cesta no estouro do cronômetro", "رمية الثواني الأخيرة", "ce panier au buzzer", "der Buzzer-Beater"),
            ("the trade deadline", "トレード期限", "la fecha límite de traspasos", "o prazo de trocas", "الموعد النهائي للصفقات", "la date limite des transferts", "die Trade-Deadline"),
            ("the dunk contest", "ダンクコンテスト", "el concurso de mates", "o torneio de enterradas", "مسابقة التسديد الساحق", "le concours de dunks", "der Dunk-Contest"),
        ),
    ),
    Topic(
        "tennis", "sports", ("tennis", "Wimbledon", "RolandGarros"), ("🎾",),
        ("tennis", "テニス", "tenis", "tênis", "التنس", "tennis", "Tennis"),
        (
            ("the Wimbledon final", "ウィンブルドン決勝", "la final de Wimbledon", "a final de Wimbledon", "نهائي ويمبلدون", "la finale de Wimbledon", "das Wimbledon-Finale"),
            ("that five-set match", "あのフルセットの試合", "ese partido a cinco sets", "aquela partida de cinco sets", "مباراة الخمس مجموعات", "ce match en cinq sets", "das Fünf-Satz-Match"),
            ("the clay season", "クレーシーズン", "la temporada de tierra batida", "a temporada de saibro", "موسم الملاعب الترابية", "la saison sur terre battue", "die Sandplatzsaison"),
            ("that backhand winner", "あのバックハンドのウィナー", "ese revés ganador", "aquele backhand vencedor", "ضربة الباك هاند الرائعة", "ce revers gagnant", "der Rückhand-Winner"),
        ),
    ),
    # --- tech
    Topic(
        "ai", "tech", ("AI", "MachineLearning", "ChatGPT"), ("🤖", "🧠"),
        ("AI", "AI", "IA", "IA", "الذكاء الاصطناعي", "IA", "KI"),
        (
            ("the new language model", "新しい言語モデル", "el nuevo modelo de lenguaje", "o novo modelo de linguagem", "نموذج اللغة الجديد", "le nouveau modèle de langage", "das neue Sprachmodell"),
            ("that chatbot answer", "あのチャットボットの回答", "esa respuesta del chatbot", "aquela resposta do chatbot", "إجابة روبوت المحادثة", "cette réponse du chatbot", "die Antwort vom Chatbot"),
            ("machine learning", "機械学習", "el aprendizaje automático", "o aprendizado de máquina", "تعلم الآلة", "l'apprentissage automatique", "maschinelles Lernen"),
            ("the AI regulation debate", "AI規制の議論", "el debate sobre regular la IA", "o debate sobre regular a IA", "الجدل حول تنظيم الذكاء الاصطناعي", "le débat sur la régulation de l'IA", "die Debatte um KI-Regulierung"),
        ),
    ),
    Topic(
        "smartphones", "tech", ("smartphone", "iPhone", "Android"), ("📱", "🔋"),
        ("smartphones", "スマホ", "móviles", "celulares", "الهواتف الذكية", "smartphones", "Smartphones"),
        (
            ("the new phone launch", "新型スマホの発表", "el lanzamiento del nuevo móvil", "o lançamento do novo celular", "إطلاق الهاتف الجديد", "la sortie du nouveau téléphone", "der Launch des neuen Handys"),
            ("the battery life", "バッテリー持ち", "la duración de la batería", "a duração da bateria", "عمر البطارية", "l'autonomie de la batterie", "die Akkulaufzeit"),
            ("that camera comparison", "あのカメラ比較", "esa comparación de cámaras", "aquela comparação de câmeras", "مقارنة الكاميرات تلك", "ce comparatif photo", "der Kameravergleich"),
            ("the foldable screen", "折りたたみ画面", "la pantalla plegable", "a tela dobrável", "الشاشة القابلة للطي", "l'écran pliable", "das faltbare Display"),
        ),
    ),
    Topic(
        "crypto", "tech", ("crypto", "Bitcoin", "Ethereum"), ("🚀", "💰"),
        ("crypto", "仮想通貨", "cripto", "cripto", "العملات الرقمية", "crypto", "Krypto"),
        (
            ("the bitcoin price", "ビットコインの価格", "el precio del bitcoin", "o preço do bitcoin", "سعر البيتكوين", "le cours du bitcoin", "der Bitcoin-Kurs"),
            ("that token launch", "あのトークンのローンチ", "ese lanzamiento de token", "aquele lançamento de token", "إطلاق العملة ذاك", "ce lancement de token", "der Token-Launch"),
            ("the market crash", "相場の暴落", "la caída del mercado", "a queda do mercado", "انهيار السوق", "le krach du marché", "der Marktcrash"),
            ("the new ETF", "新しいETF", "el nuevo ETF", "o novo ETF", "صندوق المؤشرات الجديد", "le nouvel ETF", "der neue ETF"),
        ),
    ),
    # --- screen
    Topic(
        "movies", "screen", ("movies", "Oscars", "cinema"), ("🎬", "🍿"),
        ("movies", "映画", "cine", "cinema", "السينما", "cinéma", "Kino"),
        (
            ("the box office", "興行収入", "la taquilla", "a bilheteria", "شباك التذاكر", "le box-office", "die Kinokasse"),
            ("the Oscars", "アカデミー賞", "los Óscar", "o Oscar", "حفل الأوسكار", "les Oscars", "die Oscars"),
            ("the director's cut", "ディレクターズカット", "el montaje del director", "a versão do diretor", "نسخة المخرج", "la version du réalisateur", "der Director's Cut"),
            ("the premiere", "プレミア上映", "el estreno", "a estreia", "العرض الأول", "l'avant-première", "die Premiere"),
        ),
    ),
    Topic(
        "tv_series", "screen", ("Netflix", "TVSeries", "bingewatching"), ("📺", "🛋️"),
        ("TV series", "ドラマ", "series", "séries", "المسلسلات", "séries", "Serien"),
        (
            ("the season finale", "シーズン最終回", "el final de temporada", "o final da temporada", "حلقة نهاية الموسم", "le final de saison", "das Staffelfinale"),
            ("the new episode", "新エピソード", "el nuevo episodio", "o novo episódio", "الحلقة الجديدة", "le nouvel épisode", "die neue Folge"),
            ("binge-watching", "一気見", "el maratón de series", "a maratona de séries", "مشاهدة الحلقات المتواصلة", "le binge-watching", "Binge-Watching"),
            ("the streaming release", "配信開始", "el estreno en streaming", "o lançamento no streaming", "الإصدار على منصات البث", "la sortie en streaming", "der Streaming-Start"),
        ),
    ),
    Topic(
        "anime", "screen", ("anime", "manga", "Otaku"), ("🍥", "✨"),
        ("anime", "アニメ", "anime", "anime", "الأنمي", "anime", "Anime"),
        (
            ("the new anime season", "今期アニメ", "la nueva temporada de anime", "a nova temporada de anime", "موسم الأنمي الجديد", "la nouvelle saison d'anime", "die neue Anime-Season"),
            ("that manga chapter", "あの漫画の最新話", "ese capítulo del manga", "aquele capítulo do mangá", "فصل المانغا ذاك", "ce chapitre du manga", "das Manga-Kapitel"),
            ("the opening song", "オープニング曲", "el opening", "a abertura", "أغنية البداية", "le générique", "das Opening"),
            ("the cosplay", "コスプレ", "el cosplay", "o cosplay", "الكوسبلاي", "le cosplay", "das Cosplay"),
        ),
    ),
    # --- music
    Topic(
        "kpop", "music", ("kpop", "BTS", "BLACKPINK"), ("💜", "🫰"),
        ("K-pop", "K-POP", "K-pop", "K-pop", "الكيبوب", "K-pop", "K-Pop"),
        (
            ("the comeback", "カムバ", "el comeback", "o comeback", "عودة الفرقة", "le comeback", "das Comeback"),
            ("the fan meeting", "ファンミーティング", "el fanmeeting", "o fanmeeting", "لقاء المعجبين", "le fanmeeting", "das Fanmeeting"),
            ("the dance practice video", "ダンスプラクティス動画", "el video de práctica de baile", "o vídeo de prática de dança", "فيديو التدريب على الرقص", "la vidéo de dance practice", "das Dance-Practice-Video"),
            ("the lightstick", "ペンライト", "el lightstick", "o lightstick", "عصا الإضاءة", "le lightstick", "der Lightstick"),
        ),
    ),
    Topic(
        "pop_music", "music", ("NowPlaying", "Grammys", "popmusic"), ("🎤", "🎶"),
        ("pop music", "洋楽", "música pop", "música pop", "موسيقى البوب", "musique pop", "Popmusik"),
        (
            ("the Grammys", "グラミー賞", "los Grammy", "o Grammy", "جوائز الغرامي", "les Grammys", "die Grammys"),
            ("that new single", "あの新曲", "ese nuevo sencillo", "aquele novo single", "الأغنية المنفردة الجديدة", "ce nouveau single", "die neue Single"),
            ("the stadium concert", "スタジアムライブ", "el concierto en el estadio", "o show no estádio", "الحفل في الملعب", "le concert au stade", "das Stadionkonzert"),
            ("the charts", "ヒットチャート", "las listas de éxitos", "as paradas de sucesso", "قوائم الأغاني الأكثر استماعا", "les charts", "die Charts"),
        ),
    ),
    Topic(
        "hiphop", "music", ("hiphop", "rap", "NewMusic"), ("🎧", "🎙️"),
        ("hip-hop", "ヒップホップ", "hip hop", "hip hop", "الهيب هوب", "rap", "Hip-Hop"),
        (
            ("the diss track", "ディス曲", "la tiraera", "a diss", "أغنية الرد", "le clash", "der Disstrack"),
            ("that freestyle", "あのフリースタイル", "ese freestyle", "aquele freestyle", "الفريستايل ذاك", "ce freestyle", "der Freestyle"),
            ("the mixtape", "ミックステープ", "la mixtape", "a mixtape", "الميكس تيب", "la mixtape", "das Mixtape"),
            ("the rap battle", "MCバトル", "la batalla de rap", "a batalha de rima", "معركة الراب", "le battle de rap", "das Rap-Battle"),
        ),
    ),
    # --- games
    Topic(
        "video_games", "games", ("gaming", "PS5", "NintendoSwitch"), ("🎮", "🕹️"),
        ("video games", "ゲーム", "videojuegos", "videogames", "ألعاب الفيديو", "jeux vidéo", "Videospiele"),
        (
            ("the new console", "新型ゲーム機", "la nueva consola", "o novo console", "الجهاز الجديد", "la nouvelle console", "die neue Konsole"),
            ("the open-world game", "オープンワールドゲーム", "el juego de mundo abierto", "o jogo de mundo aberto", "لعبة العالم المفتوح", "le jeu en monde ouvert", "das Open-World-Spiel"),
            ("the boss fight", "ボス戦", "la pelea contra el jefe", "a luta contra o chefão", "قتال الزعيم", "le combat de boss", "der Bosskampf"),
            ("the game release date", "ゲームの発売日", "la fecha de lanzamiento del juego", "a data de lançamento do jogo", "موعد إصدار اللعبة", "la date de sortie du jeu", "der Release-Termin des Spiels"),
        ),
    ),
    Topic(
        "esports", "games", ("esports", "LoL", "Valorant"), ("🏆", "⚔️"),
        ("esports", "eスポーツ", "esports", "esports", "الرياضات الإلكترونية", "esport", "E-Sport"),
        (
            ("the world championship", "世界大会", "el mundial", "o mundial", "بطولة العالم", "le championnat du monde", "die Weltmeisterschaft"),
            ("the grand final", "グランドファイナル", "la gran final", "a grande final", "النهائي الكبير", "la grande finale", "das Grand Final"),
            ("the team roster", "チームのロスター", "la plantilla del equipo", "o elenco do time", "تشكيلة الفريق", "le roster de l'équipe", "das Team-Roster"),
            ("that clutch play", "あのクラッチプレー", "esa jugada clutch", "aquela jogada clutch", "اللعبة الحاسمة تلك", "cette action clutch", "der Clutch-Moment"),
        ),
    ),
    Topic(
        "chess", "games", ("chess", "Chesscom", "FIDE"), ("♟️", "👑"),
        ("chess", "チェス", "ajedrez", "xadrez", "الشطرنج", "échecs", "Schach"),
        (
            ("the candidates tournament", "挑戦者決定戦", "el torneo de candidatos", "o torneio de candidatos", "بطولة المرشحين", "le tournoi des candidats", "das Kandidatenturnier"),
            ("that queen sacrifice", "あのクイーンサクリファイス", "ese sacrificio de dama", "aquele sacrifício de dama", "التضحية بالوزير", "ce sacrifice de dame", "das Damenopfer"),
            ("the blitz game", "ブリッツ対局", "la partida de blitz", "a partida de blitz", "مباراة البليتز", "la partie de blitz", "die Blitzpartie"),
            ("the opening prep", "序盤の研究", "la preparación de aperturas", "a preparação de aberturas", "تحضير الافتتاحيات", "la préparation d'ouvertures", "die Eröffnungsvorbereitung"),
        ),
    ),
    # --- food
    Topic(
        "cooking", "food", ("cooking", "recipe", "homemade"), ("🍝", "🥘"),
        ("cooking", "料理", "cocina", "culinária", "الطبخ", "cuisine", "Kochen"),
        (
            ("homemade pasta", "手作りパスタ", "la pasta casera", "o macarrão caseiro", "المعكرونة المنزلية", "les pâtes maison", "die hausgemachte Pasta"),
            ("the slow cooker", "スロークッカー", "la olla lenta", "a panela elétrica", "قدر الطهي البطيء", "la mijoteuse", "der Schongarer"),
            ("sourdough bread", "サワードウ", "el pan de masa madre", "o pão de fermentação natural", "خبز العجين المخمر", "le pain au levain", "das Sauerteigbrot"),
            ("meal prep", "作り置き", "la preparación de comidas", "a marmita da semana", "تحضير الوجبات", "le batch cooking", "Meal-Prep"),
        ),
    ),
    Topic(
        "coffee", "food", ("coffee", "CoffeeTime", "latte"), ("☕",),
        ("coffee", "コーヒー", "café", "café", "القهوة", "café", "Kaffee"),
        (
            ("my morning espresso", "朝のエスプレッソ", "mi espresso de la mañana", "meu espresso da manhã", "قهوة الإسبريسو الصباحية", "mon espresso du matin", "mein Morgen-Espresso"),
            ("the latte art", "ラテアート", "el latte art", "a latte art", "فن اللاتيه", "le latte art", "die Latte Art"),
            ("the new coffee shop", "新しいカフェ", "la nueva cafetería", "a nova cafeteria", "المقهى الجديد", "le nouveau coffee shop", "das neue Café"),
            ("cold brew", "水出しコーヒー", "el cold brew", "o cold brew", "القهوة الباردة", "le cold brew", "Cold Brew"),
        ),
    ),
    Topic(
        "restaurants", "food", ("foodie", "restaurant", "streetfood"), ("🍜", "🍣"),
        ("restaurants", "グルメ", "restaurantes", "restaurantes", "المطاعم", "restos", "Restaurants"),
        (
            ("the tasting menu", "コース料理", "el menú degustación", "o menu degustação", "قائمة التذوق", "le menu dégustation", "das Degustationsmenü"),
            ("that ramen place", "あのラーメン屋", "ese sitio de ramen", "aquele lugar de lámen", "مطعم الرامن ذاك", "ce resto de ramen", "der Ramen-Laden"),
            ("the Michelin star", "ミシュランの星", "la estrella Michelin", "a estrela Michelin", "نجمة ميشلان", "l'étoile Michelin", "der Michelin-Stern"),
            ("street food", "屋台グルメ", "la comida callejera", "a comida de rua", "أكل الشارع", "la street food", "Streetfood"),
        ),
    ),
    # --- news
    Topic(
        "elections", "news", ("politics", "Election2026", "vote"), ("🗳️", "🏛️"),
        ("politics", "政治", "política", "política", "السياسة", "politique", "Politik"),
        (
            ("the election debate", "選挙討論会", "el debate electoral", "o debate eleitoral", "المناظرة الانتخابية", "le débat électoral", "die Wahldebatte"),
            ("the campaign rally", "選挙集会", "el mitin de campaña", "o comício", "التجمع الانتخابي", "le meeting de campagne", "die Wahlkampfveranstaltung"),
            ("the vote count", "開票", "el recuento de votos", "a apuração dos votos", "فرز الأصوات", "le dépouillement", "die Stimmenauszählung"),
            ("the new parliament", "新しい国会", "el nuevo parlamento", "o novo parlamento", "البرلمان الجديد", "le nouveau parlement", "das neue Parlament"),
        ),
    ),
    Topic(
        "economy", "news", ("economy", "inflation", "stocks"), ("📈", "💸"),
        ("economy", "経済", "economía", "economia", "الاقتصاد", "économie", "Wirtschaft"),
        (
            ("inflation", "インフレ", "la inflación", "a inflação", "التضخم", "l'inflation", "die Inflation"),
            ("the interest rate decision", "利上げの決定", "la decisión sobre los tipos de interés", "a decisão sobre os juros", "قرار سعر الفائدة", "la décision sur les taux", "die Zinsentscheidung"),
            ("the jobs report", "雇用統計", "el informe de empleo", "o relatório de emprego", "تقرير الوظائف", "le rapport sur l'emploi", "der Arbeitsmarktbericht"),
            ("the stock market", "株式市場", "la bolsa", "a bolsa de valores", "سوق الأسهم", "la bourse", "die Börse"),
        ),
    ),
    Topic(
        "climate", "news", ("climate", "ClimateAction", "ClimateChange"), ("🌍", "🌡️"),
        ("climate", "気候", "clima", "clima", "المناخ", "climat", "Klima"),
        (
            ("the heatwave", "熱波", "la ola de calor", "a onda de calor", "موجة الحر", "la canicule", "die Hitzewelle"),
            ("the climate summit", "気候サミット", "la cumbre del clima", "a cúpula do clima", "قمة المناخ", "le sommet sur le climat", "der Klimagipfel"),
            ("renewable energy", "再生可能エネルギー", "la energía renovable", "a energia renovável", "الطاقة المتجددة", "l'énergie renouvelable", "erneuerbare Energie"),
            ("the flood warning", "洪水警報", "la alerta por inundaciones", "o alerta de enchente", "تحذير الفيضانات", "l'alerte inondation", "die Hochwasserwarnung"),
        ),
    ),
    # --- science
    Topic(
        "space", "science", ("space", "NASA", "astronomy"), ("🚀", "🌌"),
        ("space", "宇宙", "espacio", "espaço", "الفضاء", "espace", "Weltraum"),
        (
            ("the rocket launch", "ロケット打ち上げ", "el lanzamiento del cohete", "o lançamento do foguete", "إطلاق الصاروخ", "le lancement de la fusée", "der Raketenstart"),
            ("the Mars mission", "火星ミッション", "la misión a Marte", "a missão a Marte", "مهمة المريخ", "la mission vers Mars", "die Mars-Mission"),
            ("the telescope images", "望遠鏡の画像", "las imágenes del telescopio", "as imagens do telescópio", "صور التلسكوب", "les images du télescope", "die Teleskopbilder"),
            ("the solar eclipse", "日食", "el eclipse solar", "o eclipse solar", "كسوف الشمس", "l'éclipse solaire", "die Sonnenfinsternis"),
        ),
    ),
    Topic(
        "health", "science", ("health", "MentalHealth", "vaccine"), ("💉", "🩺"),
        ("health", "健康", "salud", "saúde", "الصحة", "santé", "Gesundheit"),
        (
            ("the new vaccine", "新しいワクチン", "la nueva vacuna", "a nova vacina", "اللقاح الجديد", "le nouveau vaccin", "der neue Impfstoff"),
            ("the flu season", "インフルエンザの季節", "la temporada de gripe", "a temporada de gripe", "موسم الإنفلونزا", "la saison de la grippe", "die Grippesaison"),
            ("the clinical trial", "臨床試験", "el ensayo clínico", "o ensaio clínico", "التجربة السريرية", "l'essai clinique", "die klinische Studie"),
            ("mental health", "メンタルヘルス", "la salud mental", "a saúde mental", "الصحة النفسية", "la santé mentale", "die mentale Gesundheit"),
        ),
    ),
    Topic(
        "wildlife", "science", ("wildlife", "nature", "conservation"), ("🐘", "🦜"),
        ("wildlife", "野生動物", "fauna", "vida selvagem", "الحياة البرية", "faune", "Tierwelt"),
        (
            ("the baby elephant", "子ゾウ", "el elefante bebé", "o filhote de elefante", "صغير الفيل", "le bébé éléphant", "das Elefantenbaby"),
            ("the bird migration", "渡り鳥", "la migración de las aves", "a migração das aves", "هجرة الطيور", "la migration des oiseaux", "der Vogelzug"),
            ("the coral reef", "サンゴ礁", "el arrecife de coral", "o recife de coral", "الشعاب المرجانية", "le récif corallien", "das Korallenriff"),
            ("the endangered species list", "絶滅危惧種リスト", "la lista de especies en peligro", "a lista de espécies ameaçadas", "قائمة الأنواع المهددة", "la liste des espèces menacées", "die Liste bedrohter Arten"),
        ),
    ),
)

#: Sentence templates with one slot ``{x}`` for a topic phrase, one rendering per language.
TEMPLATES: tuple[Row, ...] = (
    ("{x} is all over my timeline today", "今日のタイムライン、{x}の話ばっかり", "{x} está en todo mi timeline hoy", "{x} tá em toda a minha timeline hoje", "{x} في كل مكان على التايم لاين اليوم", "{x} partout sur ma timeline aujourd'hui", "{x} ist heute überall in meiner Timeline"),
    ("Honestly, {x} made my day", "正直、{x}で今日一日が最高になった", "La verdad, {x} me alegró el día", "Sinceramente, {x} fez o meu dia", "بصراحة، {x} صنع يومي", "Franchement, {x} a illuminé ma journée", "Ehrlich gesagt hat {x} meinen Tag gerettet"),
    ("Hot take: {x} is overrated", "暴論だけど、{x}って過大評価されてない？", "Opinión impopular: {x} no es para tanto", "Opinião impopular: {x} não é tudo isso", "رأي غير شائع: {x} مبالغ فيه", "Avis impopulaire : {x}, c'est surcoté", "Unpopuläre Meinung: {x} wird total überschätzt"),
    ("Who else is following {x} right now?", "今{x}を追ってる人いる？", "¿Quién más está siguiendo {x} ahora mismo?", "Quem mais tá acompanhando {x} agora?", "مين غيري يتابع {x} الآن؟", "Qui d'autre suit {x} en ce moment ?", "Wer verfolgt gerade auch {x}?"),
    ("Thread: everything you need to know about {x} 🧵", "スレッド：{x}について知っておくべきこと全部 🧵", "Hilo: todo lo que necesitas saber sobre {x} 🧵", "Fio: tudo o que você precisa saber sobre {x} 🧵", "ثريد: كل ما تحتاج معرفته عن {x} 🧵", "Thread : tout ce qu'il faut savoir sur {x} 🧵", "Thread: alles, was ihr über {x} wissen müsst 🧵"),
    ("Up all night again. The reason: {x}", "また徹夜。原因は{x}", "Otra vez sin dormir. El motivo: {x}", "De novo sem dormir. O motivo: {x}", "سهرت الليل كله مرة أخرى. السبب: {x}", "Encore une nuit blanche. La raison : {x}", "Schon wieder die ganze Nacht wach. Der Grund: {x}"),
    ("Can we talk about {x} for a second?", "ちょっと{x}の話していい？", "¿Podemos hablar un segundo sobre {x}?", "Dá pra gente falar sobre {x} um segundo?", "ممكن نتكلم عن {x} شوي؟", "On peut en parler deux secondes ? {x}", "Können wir kurz über {x} reden?"),
    ("{x} >>> literally everything else", "{x} >>> 他の全部", "{x} >>> literalmente todo lo demás", "{x} >>> literalmente todo o resto", "{x} >>> حرفيا كل شيء آخر", "{x} >>> littéralement tout le reste", "{x} >>> buchstäblich alles andere"),
    ("My honest review of {x}:", "{x}の正直な感想：", "Mi opinión sincera sobre {x}:", "Minha opinião sincera sobre {x}:", "رأيي الصريح في {x}:", "Mon avis honnête sur {x} :", "Meine ehrliche Meinung zu {x}:"),
    ("Still not over {x}", "まだ{x}から立ち直れない", "Todavía no supero {x}", "Ainda não superei {x}", "لسه ما تجاوزت {x}", "Toujours pas remis : {x}", "Komme immer noch nicht über {x} hinweg"),
    ("Breaking: big news about {x}", "速報：{x}に関する大ニュース", "Última hora: grandes noticias sobre {x}", "Urgente: novidades sobre {x}", "عاجل: أخبار كبيرة عن {x}", "Dernière minute : grosse annonce sur {x}", "Eilmeldung: große Neuigkeiten zu {x}"),
    ("{x}? Let's discuss 👇", "{x}について語ろう 👇", "¿{x}? Hablemos 👇", "{x}? Bora conversar 👇", "{x}؟ خلونا نتناقش 👇", "{x} ? On en parle 👇", "{x}? Lasst uns diskutieren 👇"),
)

#: Sentences that say nothing about any topic (the text of off-topic tweets).
GENERIC: tuple[Row, ...] = (
    ("Good morning everyone", "みなさんおはようございます", "Buenos días a todos", "Bom dia, pessoal", "صباح الخير للجميع", "Bonjour tout le monde", "Guten Morgen zusammen"),
    ("I need a vacation so badly", "本気で休みが欲しい", "Necesito unas vacaciones urgentemente", "Preciso muito de férias", "أحتاج إجازة بشدة", "J'ai tellement besoin de vacances", "Ich brauche dringend Urlaub"),
    ("What a week, honestly", "今週ほんとに長かった", "Qué semana, de verdad", "Que semana, viu", "يا له من أسبوع", "Quelle semaine, franchement", "Was für eine Woche, ehrlich"),
    ("Can't sleep again...", "また眠れない…", "Otra vez sin poder dormir...", "Sem sono de novo...", "مش قادر أنام مرة ثانية...", "Encore une insomnie...", "Kann schon wieder nicht schlafen..."),
    ("Thank you all for the support!", "応援ありがとうございます！", "¡Gracias a todos por el apoyo!", "Obrigado a todos pelo apoio!", "شكرا لكم جميعا على الدعم!", "Merci à tous pour le soutien !", "Danke euch allen für die Unterstützung!"),
    ("This made me laugh way too hard", "これ笑いすぎた", "Esto me hizo reír demasiado", "Isso me fez rir demais", "هذا ضحكني كثير", "Ça m'a fait beaucoup trop rire", "Das hat mich viel zu sehr zum Lachen gebracht"),
    ("Monday again, who approved this", "また月曜日、誰が許可したの", "Otra vez lunes, ¿quién aprobó esto?", "Segunda-feira de novo, quem autorizou isso?", "الاثنين مرة أخرى، من وافق على هذا", "Encore lundi, qui a validé ça ?", "Schon wieder Montag, wer hat das genehmigt"),
    ("Weekend plans: absolutely nothing", "週末の予定：何もなし", "Planes para el finde: absolutamente nada", "Planos pro fim de semana: absolutamente nada", "خطط نهاية الأسبوع: لا شيء على الإطلاق", "Programme du week-end : rien du tout", "Pläne fürs Wochenende: absolut nichts"),
    ("Best day ever", "人生最高の日", "El mejor día de mi vida", "Melhor dia da minha vida", "أفضل يوم على الإطلاق", "Meilleure journée de ma vie", "Bester Tag überhaupt"),
    ("Going offline for a bit, see you soon", "しばらくオフラインになります、またね", "Me desconecto un rato, nos vemos pronto", "Vou ficar offline um pouco, até já", "سأغيب قليلا، أراكم قريبا", "Je me déconnecte un peu, à bientôt", "Bin mal kurz offline, bis bald"),
    ("Some days you just have to laugh", "笑うしかない日もある", "Hay días en que solo queda reír", "Tem dias que só resta rir", "في أيام لازم تضحك فقط", "Il y a des jours où il faut juste en rire", "An manchen Tagen muss man einfach lachen"),
    ("Who's still awake?", "まだ起きてる人いる？", "¿Quién sigue despierto?", "Quem ainda tá acordado?", "مين لسه صاحي؟", "Qui est encore réveillé ?", "Wer ist noch wach?"),
)

#: Short follow-up sentences appended to some tweets.
TAILS: tuple[Row, ...] = (
    ("Thoughts?", "どう思う？", "¿Qué opinan?", "O que vocês acham?", "ما رأيكم؟", "Vous en pensez quoi ?", "Was meint ihr?"),
    ("I'm not okay", "無理すぎる", "No estoy bien", "Não tô bem", "مش بخير", "Je ne suis pas bien", "Mir geht's nicht gut"),
    ("Absolutely unreal", "信じられない", "Increíble", "Surreal", "غير معقول", "Complètement dingue", "Einfach unglaublich"),
    ("Can't wait", "楽しみすぎる", "No puedo esperar", "Não vejo a hora", "متحمس جدا", "J'ai trop hâte", "Ich kann's kaum erwarten"),
    ("lol", "草", "jajaja", "kkkkk", "هههه", "mdr", "haha"),
    ("Tell me I'm wrong", "異論は認める", "Díganme que me equivoco", "Me digam que eu tô errado", "قولوا لي إني غلطان", "Dites-moi que j'ai tort", "Sagt mir, dass ich falschliege"),
)

#: Hashtags and emoji that say nothing about the topic.
GENERIC_HASHTAGS: tuple[str, ...] = ("mood", "tbt", "viral", "fyp", "MondayMotivation", "weekend", "love")
GENERIC_EMOJI: tuple[str, ...] = ("😂", "❤️", "🔥", "🙏", "😍", "👀", "😭", "🎉", "💯", "🤔")

#: Syllables of the generated @handles.
HANDLE_SYLLABLES: tuple[str, ...] = (
    "ka", "ri", "to", "mo", "lu", "ne", "sa", "vi", "zo", "el", "an", "ber", "dan", "fi", "gu",
    "jo", "mar", "nik", "ol", "pa", "que", "ro", "sol", "tin", "ux", "val", "wen", "xa", "yu", "ze",
)


def check_vocab() -> None:
    """Checks that every phrase row has one rendering per language and every topic a known group.

    Raises:
        ValueError: A row of the wrong length or a topic naming an unknown group.
    """
    groups = {g.name for g in GROUPS}
    rows: list[tuple[str, tuple[str, ...]]] = []
    for t in TOPICS:
        if t.group not in groups:
            raise ValueError(f"topic {t.name!r}: unknown group {t.group!r} (known: {sorted(groups)})")
        rows += [(f"topic {t.name} label", t.label)] + [(f"topic {t.name}", r) for r in t.phrases]
    for g in GROUPS:
        rows += [(f"group {g.name}", r) for r in g.phrases]
    rows += [("template", r) for r in TEMPLATES] + [("generic", r) for r in GENERIC]
    rows += [("tail", r) for r in TAILS]
    for where, row in rows:
        if len(row) != len(LANGS):
            raise ValueError(f"{where}: {row[0]!r} has {len(row)} renderings, expected {len(LANGS)}")
    for where, row in [("template", r) for r in TEMPLATES]:
        if not all("{x}" in s for s in row):
            raise ValueError(f"{where} {row[0]!r}: every rendering needs the slot {{x}}")
