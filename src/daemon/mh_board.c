/* mh_board: being written (issue 5) */
typedef int mh_board_placeholder;
